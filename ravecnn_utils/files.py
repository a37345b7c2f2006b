"""Writing files so that they are never half written, and reading table values as plain numpy.

Every writer of the package goes through ``atomic_path``: it writes a temporary file beside
the target, then renames it, so a file either exists complete or not at all.
"""

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds."""
    path = Path(path)
    # keep the real name at the end, so that writers inferring the format from it still work
    tmp = path.with_name(f".part-{os.getpid()}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()



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
