"""Writing files so that they are never half written, and reading table values as plain numpy.

Every writer of the package goes through ``atomic_path``: it writes a temporary file beside
the target, then renames it, so a file either exists complete or not at all.
"""

import fcntl
import os
import socket
from contextlib import contextmanager
from pathlib import Path

import numpy as np

PART_PREFIX = ".part-"
"""Temporary files of ``atomic_path`` are ``.part-<pid>@<host>-<name>`` beside their target."""

HOST = socket.gethostname().replace("-", "_") or "localhost"
"""This machine's name as it appears in part-file names (``-`` replaced, so the name parses)."""

_SCANNED = set()
"""(process id, folder) pairs whose leftovers ``atomic_path`` has already removed."""


def part_path(path, pid=None):
    """The temporary file ``atomic_path`` writes for ``path`` in process ``pid`` (default: this one)."""
    path = Path(path)
    return path.with_name(f"{PART_PREFIX}{os.getpid() if pid is None else pid}@{HOST}-{path.name}")


def _process_alive(pid):
    """True if a process ``pid`` runs on this machine (or may: no permission to ask)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_parts(folder):
    """Delete the part files in ``folder`` that processes of this machine no longer running left
    behind (a writer killed with SIGKILL cannot clean up); returns them. Parts written on another
    machine (a shared disk of a cluster) are never touched: their process cannot be asked."""
    removed = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if not entry.name.startswith(PART_PREFIX):
                continue
            pid, _, rest = entry.name[len(PART_PREFIX):].partition("@")
            host = rest.partition("-")[0]
            if host == HOST and pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
                Path(entry.path).unlink(missing_ok=True)
                removed.append(Path(entry.path))
    return removed


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    The first write of a process into a folder removes the leftovers of killed writers there
    (``remove_stale_parts``: one scan of the folder, so writing many files stays linear in time).
    """
    path = Path(path)
    folder = path.parent.absolute()
    if (os.getpid(), folder) not in _SCANNED and folder.is_dir():
        remove_stale_parts(folder)
        _SCANNED.add((os.getpid(), folder))
    tmp = part_path(path)  # the real name stays at the end, for writers that infer the format from it
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class LockedError(RuntimeError):
    """Another run holds the lock of the file this run would write."""


@contextmanager
def exclusive_lock(path):
    """Hold an exclusive lock on writing ``path`` for the duration of the block.

    The lock is ``.<name>.lock`` beside ``path`` (an advisory ``flock``, released by the
    operating system if the process dies; the small file stays). A second run that wants to
    write the same file meanwhile gets ``LockedError`` naming the file, instead of two runs
    mixing their parts.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(f".{path.name}.lock")
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(f"{path} is being written by another run (it holds {lock}); "
                              "wait for that run to finish, or stop it, then run again") from None
        try:
            yield path
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_table(table, path, overwrite=False):
    """Write an astropy Table to FITS (or any format astropy infers) atomically."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    with atomic_path(path) as tmp:
        table.write(tmp, format="fits" if path.suffix == ".fits" else None)


def native(array):
    """A copy of ``array`` in native byte order (FITS data are big-endian)."""
    array = np.asarray(array)
    return array.astype(array.dtype.newbyteorder("="))


def ascii_bytes(values):
    """str ``values`` as ASCII bytes of the same width (other arrays as they are): a quarter of the
    memory, and the same FITS column. Compare them with bytes (``b"field"``): numpy finds a bytes
    array equal to no str."""
    values = np.asarray(values)
    return values.astype(f"S{values.dtype.itemsize // 4}") if values.dtype.kind == "U" else values


def strings(values):
    """Stripped ``str`` array from bytes / str / object values (masked values become '')."""
    if np.ma.isMaskedArray(values):
        values = np.ma.asarray(values).astype(object).filled("")
    values = np.asarray(values)
    if values.dtype.kind == "S":
        values = np.char.decode(values, "ascii", errors="replace")
    return np.char.strip(values.astype(str))


def float_column(table, name, what):
    """Column ``name`` of ``table`` as float64, NaN where masked; KeyError naming ``what`` and the columns."""
    if name not in table.colnames:
        raise KeyError(f"{what}: no column {name!r} (columns: {', '.join(table.colnames)})")
    return np.asarray(np.ma.filled(np.ma.asarray(table[name], float), np.nan), float)


def row_index(keys, wanted, what, allow_missing=False):
    """Row of each ``wanted`` key in ``keys``; KeyError naming the first missing ones, or, with
    ``allow_missing``, -1 for each of them."""
    index = {str(k).strip(): i for i, k in enumerate(keys)}
    if allow_missing:
        return np.array([index.get(str(w).strip(), -1) for w in wanted], int)
    missing = [str(w) for w in wanted if str(w).strip() not in index]
    if missing:
        raise KeyError(f"{what}: {len(missing)} identifiers not found, e.g. {missing[:3]}")
    return np.array([index[str(w).strip()] for w in wanted], int)


def where(path):
    """``path`` for a message: a relative path says what it is relative to (the working directory;
    in a notebook that is ``notebooks/``)."""
    path = Path(path)
    return str(path) if path.is_absolute() else f"{path} (relative to {Path.cwd()})"


def as_float(column):
    """Float array of a (masked) column, NaN where masked."""
    return np.ma.filled(np.ma.asarray(column).astype(float), np.nan)


def require_columns(table, columns, what):
    """ValueError naming ``what`` and the columns of ``columns`` that ``table`` lacks."""
    missing = [c for c in columns if c not in table.colnames]
    if missing:
        raise ValueError(f"{what}: table lacks column(s) {', '.join(missing)}")
