"""FITS binary tables written and read a block of rows at a time: memory bounded by the block.

``write_fits(path, tables, primary)`` writes a FITS file atomically: a primary HDU, then each table
as a binary-table HDU; ``append_table(handle, table)`` writes one such HDU at the end of an open
file. A table is anything with ``len()``, ``name`` (EXTNAME or None) and ``block(start, stop)``
returning those rows as an astropy Table: ``Rows`` wraps a Table held in memory, ``Spool`` keeps
columns saved one at a time in a folder (for a table too big to hold whole). The bytes are those
of ``Table.write`` (``fits.table_to_hdu``, then ``HDUList.writeto``): the header is astropy's for
the first block with NAXIS2 set to all the rows, and astropy encodes every block (big-endian
numbers, ASCII strings, 'T'/'F' booleans). Whole-table writers convert the whole table at once:
a FITS copy of it, and a 4-byte-per-character copy of every string column.

``iter_columns(path, names, hdu)`` reads only some columns of a binary table, a block of rows at a
time (``read_columns``: all rows in one Table), with plain reads: a memory-mapped column of a table
stored row after row touches, and keeps resident, every page of the table.
"""

import io
import shutil
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import Column, MaskedColumn, Table

from .files import atomic_path
from .fitsbytes import padded

ROWS = 10_000
"""Rows per block (a few MB of a catalogue's columns)."""


class Unsupported(ValueError):
    """A table or column ``read_columns`` does not read (compressed file, scaled, null-flagged,
    bit or variable-length column): read it with astropy instead."""


class Rows:
    """A table held in memory, as ``append_table`` takes it (``name``: its EXTNAME, or None)."""

    def __init__(self, table, name=None):
        self.table, self.name = table, name

    def __len__(self):
        return len(self.table)

    def block(self, start, stop):
        return self.table[start:stop]


class Spool:
    """The columns of one table, saved one at a time as ``.npy`` files in ``folder``: a table that
    is made a column at a time (in a fixed order, e.g. of random draws) without holding it whole.
    ``add(name, values)`` takes what a Table takes as a column (array, Column or Quantity: the
    unit is kept); ``close()`` removes the folder."""

    def __init__(self, folder, name=None, meta=None):
        self.folder, self.name, self.meta = Path(folder), name, dict(meta or {})
        self.folder.mkdir(parents=True)
        self._columns, self._rows = {}, None

    def add(self, name, values):
        column = Table({name: values}, copy=False)[name]
        if self._rows is not None and len(column) != self._rows:
            raise ValueError(f"spool {self.folder}: column {name!r} has {len(column)} rows, the others {self._rows}")
        path = self.folder / f"{len(self._columns):03d}.npy"
        np.save(path, np.asarray(column))
        self._columns[name], self._rows = (path, column.unit), len(column)

    def __len__(self):
        return self._rows or 0

    def block(self, start, stop):
        # copies of the rows: a view would keep the memory map, and what the kernel maps of it
        return Table([Column(np.array(np.load(path, mmap_mode="r")[start:stop]), name=name, unit=unit)
                      for name, (path, unit) in self._columns.items()], meta=self.meta)

    def close(self):
        shutil.rmtree(self.folder, ignore_errors=True)


def _encoded(hdu, primary):
    """(the bytes before the table's header, the table's data) as ``HDUList.writeto`` writes ``hdu``
    after the PrimaryHDU ``primary`` (memoryviews: no copies)."""
    buffer = io.BytesIO()
    fits.HDUList([primary, hdu]).writeto(buffer)
    raw = buffer.getbuffer()
    header = hdu.header.tostring().encode("ascii")
    nbytes = hdu.header["NAXIS1"] * hdu.header["NAXIS2"]
    start = len(raw) - padded(nbytes) - len(header)  # the data (padded) end the file
    if raw[start:start + len(header)] != header:
        raise RuntimeError("astropy wrote a table header other than its own; cannot write by blocks")
    return raw[:start], raw[start + len(header):start + len(header) + nbytes]


def append_table(handle, table, rows=ROWS, primary=None):
    """Write ``table`` (``Rows``, ``Spool`` …) as a binary-table HDU at the position of the open
    binary file ``handle``, ``rows`` rows at a time (one block for an empty table); with ``primary``
    (a PrimaryHDU) write that first. ValueError if the blocks' headers differ (a column whose FITS
    format would depend on its values)."""
    n, first = len(table), None
    for start in range(0, max(n, 1), rows):
        hdu = fits.table_to_hdu(table.block(start, min(start + rows, n)))
        if table.name is not None:
            hdu.name = table.name
        if hdu.header.get("PCOUNT", 0):
            raise ValueError(f"table {table.name}: variable-length columns cannot be written by blocks")
        head, data = _encoded(hdu, primary or fits.PrimaryHDU())
        hdu.header["NAXIS2"] = n
        text, width = hdu.header.tostring(), hdu.header["NAXIS1"]
        if first is None:
            first = text
            if primary is not None:
                handle.write(head)
            handle.write(text.encode("ascii"))
        elif text != first:
            raise ValueError(f"table {table.name}: the FITS header of a block differs from the first block's")
        handle.write(data)
        del hdu, head, data  # before the next block is made: memory holds one
    handle.write(bytes(-(n * width) % 2880))


def write_fits(path, tables, primary=None, rows=ROWS):
    """Write a FITS file atomically: the PrimaryHDU ``primary`` (default an empty one, as
    ``Table.write``), then each of ``tables`` as a binary-table HDU, ``rows`` rows at a time."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        for k, table in enumerate(tables):
            append_table(handle, table, rows, primary=(primary or fits.PrimaryHDU()) if k == 0 else None)
    return Path(path)


# ------------------------------------------------------------------ reading
def _check_column(path, column):
    """Unsupported naming the column if it is not a plain fixed-width one."""
    why = ("scaled (TSCAL/TZERO)" if column.bscale not in (None, 1) or column.bzero not in (None, 0) else
           "null-flagged (TNULL)" if column.null is not None else
           "a bit or variable-length array" if column.format.format in ("X", "P", "Q") else None)
    if why:
        raise Unsupported(f"{path}: column {column.name!r} is {why}")


def _layout(path, names, hdu):
    """(rows, data offset, big-endian record dtype, {name: (native dtype, unit)}) of the columns
    ``names`` (None: all) of a FITS file's binary table ``hdu``, from its header alone."""
    path = Path(path)
    if path.suffix.lower() in (".gz", ".bz2", ".zip"):
        raise Unsupported(f"{path}: a compressed file")
    with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
        table = hdul[hdu]
        if not isinstance(table, fits.BinTableHDU):
            raise ValueError(f"{path}: HDU {hdu!r} is not a binary table")
        columns, n, offset = table.columns, table.header["NAXIS2"], table.fileinfo()["datLoc"]
    names = list(columns.names if names is None else names)
    missing = [name for name in names if name not in columns.names]
    if missing:
        raise KeyError(f"{path}: no column(s) {missing} (columns: {', '.join(columns.names)})")
    record = columns.dtype.newbyteorder(">")  # FITS is big-endian (astropy's dtype says native)
    wanted = {}
    for name in names:
        _check_column(path, columns[name])
        field = record[name]
        dtype = bool if columns[name].format.format == "L" else field.base.newbyteorder("=")
        wanted[name] = (np.dtype((dtype, field.shape)), _unit(columns[name].unit))
    return n, offset, record, wanted


def iter_columns(path, names=None, hdu=1, rows=ROWS):
    """Yield the columns ``names`` (default all) of the binary table ``hdu`` (index or EXTNAME) of a
    FITS file ``rows`` rows at a time, each block a Table of native-endian arrays (strings as bytes,
    'L' as bool; units from TUNITn). KeyError names a missing column; ``Unsupported`` a compressed
    file or a column this plain reader does not decode."""
    n, offset, record, wanted = _layout(path, names, hdu)
    with open(path, "rb") as handle:
        for start in range(0, n, rows):
            handle.seek(offset + start * record.itemsize)
            count = min(rows, n - start)
            block = np.fromfile(handle, record, count)
            if block.size != count:
                raise ValueError(f"{path}: truncated table (row {start + block.size} of {n})")
            yield Table([Column(block[name] == ord("T") if dtype.base == bool else block[name].astype(dtype.base),
                                name=name, unit=unit) for name, (dtype, unit) in wanted.items()], copy=False)


def read_columns(path, names=None, hdu=1, rows=ROWS):
    """The columns ``names`` of a FITS binary table, read by ``iter_columns``, in one Table as
    ``Table.read`` makes it: trailing spaces stripped, NaN and empty strings masked (a
    MaskedColumn where there are any), units from TUNITn (TDISPn display formats are not read)."""
    n, _, _, wanted = _layout(path, names, hdu)
    out = {name: np.empty(n, dtype) for name, (dtype, _) in wanted.items()}
    start = 0
    for block in iter_columns(path, names, hdu, rows):
        for name in out:
            out[name][start:start + len(block)] = block[name]
        start += len(block)
    columns = []
    for name, values in out.items():
        if values.dtype.kind == "S":
            values = np.strings.rstrip(values)
        mask = np.isnan(values) if values.dtype.kind == "f" else values == b"" if values.dtype.kind == "S" else None
        column = (MaskedColumn(values, name=name, mask=mask, copy=False) if mask is not None and mask.any()
                  else Column(values, name=name, copy=False))
        column.unit = wanted[name][1]
        columns.append(column)
    return Table(columns, copy=False)


def _unit(text):
    """A TUNITn string as astropy's FITS reader makes it (None for none)."""
    return u.Unit(text, format="fits", parse_strict="warn") if text else None
