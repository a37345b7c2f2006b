"""Writing files so that they are never half written, and reading table values as plain numpy.

Every writer of the package goes through ``atomic_path``: it writes a temporary file beside
the target, then renames it, so a file either exists complete or not at all.
"""

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

PART_PREFIX = ".part-"
"""Temporary files of ``atomic_path`` are ``.part-<pid>-<name>`` beside their target."""


def _process_alive(pid):
    """True if a process ``pid`` runs on this machine (or may: no permission to ask)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_parts(path):
    """Delete the ``.part-<pid>-<name>`` files beside ``path`` that processes no longer running
    on this machine left behind (a writer killed with SIGKILL cannot clean up); returns them."""
    path = Path(path)
    removed = []
    for part in path.parent.glob(f"{PART_PREFIX}*-{path.name}"):
        pid = part.name[len(PART_PREFIX):-len(path.name) - 1]
        if pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
            part.unlink(missing_ok=True)
            removed.append(part)
    return removed


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    Leftovers of earlier writers of the same file that were killed are removed first.
    """
    path = Path(path)
    remove_stale_parts(path)
    # keep the real name at the end, so that writers inferring the format from it still work
    tmp = path.with_name(f"{PART_PREFIX}{os.getpid()}-{path.name}")
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


def row_index(keys, wanted, what):
    """Row of each ``wanted`` key in ``keys``; KeyError naming the first missing ones."""
    index = {str(k).strip(): i for i, k in enumerate(keys)}
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
