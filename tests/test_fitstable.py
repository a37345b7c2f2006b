"""FITS binary tables by blocks of rows (ravecnn_utils.fitstable): the bytes astropy's whole-table
writer writes, and the columns astropy's reader reads."""

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.table import Table

from ravecnn_utils import fitstable


def _table(n=1_001, seed=0):
    """Every kind of column the package writes: strings (str and bytes, of varying length, empty),
    float and int of both widths, bool, a 3×3 array per row, units and header keywords."""
    rng = np.random.default_rng(seed)
    table = Table({"id": np.array([f"x{i}" * (1 + i % 3) for i in range(n)]),
                   "raw": np.array([b"ab", b""] * (n // 2) + [b"c"] * (n % 2)),
                   "v": rng.normal(size=n) * u.km / u.s, "i": np.arange(n), "j": np.arange(n, dtype=np.int32),
                   "ok": rng.uniform(size=n) < 0.5, "m": rng.normal(size=(n, 3, 3)),
                   "t": rng.normal(size=n).astype(np.float32)}, meta={"ORIGIN": "test", "COMMENT": "a comment"})
    table["t"].unit = u.K
    return table


@pytest.mark.parametrize("rows", [1, 7, 1_000, 5_000])
def test_write_fits_gives_the_bytes_of_table_write(tmp_path, rows):
    table = _table()
    table.write(tmp_path / "astropy.fits")
    fitstable.write_fits(tmp_path / "blocks.fits", [fitstable.Rows(table)], rows=rows)
    assert (tmp_path / "blocks.fits").read_bytes() == (tmp_path / "astropy.fits").read_bytes()


def test_several_named_tables_after_a_primary_header(tmp_path):
    """As ``HDUList.writeto`` writes them: the primary's cards, then each table with its EXTNAME."""
    first, second = _table(50), _table(0)
    primary = fits.PrimaryHDU()
    primary.header["SIMULATE"] = True
    hdus = [primary]
    for table, name in ((first, "FIRST"), (second, "EMPTY")):
        hdus.append(fits.table_to_hdu(table))
        hdus[-1].name = name
    fits.HDUList(hdus).writeto(tmp_path / "astropy.fits")
    primary = fits.PrimaryHDU()
    primary.header["SIMULATE"] = True
    fitstable.write_fits(tmp_path / "blocks.fits", [fitstable.Rows(first, "FIRST"), fitstable.Rows(second, "EMPTY")],
                         primary=primary, rows=16)
    assert (tmp_path / "blocks.fits").read_bytes() == (tmp_path / "astropy.fits").read_bytes()


def test_spool_keeps_columns_on_disk_and_writes_the_same_table(tmp_path):
    table = _table(300)
    table.write(tmp_path / "astropy.fits")
    spool = fitstable.Spool(tmp_path / "spool", meta=table.meta)
    for name in table.colnames:
        spool.add(name, table[name])
    assert len(list((tmp_path / "spool").iterdir())) == len(table.colnames)
    fitstable.write_fits(tmp_path / "blocks.fits", [spool], rows=64)
    spool.close()
    assert not (tmp_path / "spool").exists()
    assert (tmp_path / "blocks.fits").read_bytes() == (tmp_path / "astropy.fits").read_bytes()


def test_spool_refuses_a_column_of_another_length(tmp_path):
    spool = fitstable.Spool(tmp_path / "spool")
    spool.add("a", np.arange(3))
    with pytest.raises(ValueError, match="'b' has 2 rows"):
        spool.add("b", np.arange(2))


class _Widening:
    """A table whose string column widens from block to block (as one computed per block might)."""
    name = None

    def __len__(self):
        return 4

    def block(self, start, stop):
        return Table({"s": np.array(["x" * (1 + start)] * (stop - start))})


def test_blocks_whose_header_differs_are_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(ValueError, match="differs from the first block"):
        fitstable.write_fits(tmp_path / "t.fits", [_Widening()], rows=2)
    assert not (tmp_path / "t.fits").exists()
    fitstable.write_fits(tmp_path / "t.fits", [_Widening()], rows=4)  # one block: nothing to differ
    assert Table.read(tmp_path / "t.fits")["s"].tolist() == ["x"] * 4


def test_read_columns_reads_what_astropy_reads(tmp_path):
    """The same values, types, units and masks (NaN and empty strings), without reading the rest."""
    table = _table()
    table["v"][::7] = np.nan
    table["raw"] = table["raw"].astype("S3")
    table["raw"][1] = b"a  "  # trailing spaces: stripped
    table.write(tmp_path / "t.fits")
    reference = Table.read(tmp_path / "t.fits")
    names = ["id", "raw", "v", "j", "ok", "m", "t"]
    got = fitstable.read_columns(tmp_path / "t.fits", names, rows=100)
    assert got.colnames == names
    for name in names:
        assert got[name].dtype == reference[name].dtype.newbyteorder("="), name
        assert got[name].unit == reference[name].unit, name
        assert type(got[name]) is type(reference[name]), name
        assert np.array_equal(np.ma.getmaskarray(got[name]), np.ma.getmaskarray(reference[name])), name
        assert np.array_equal(np.asarray(got[name]), np.asarray(reference[name]), equal_nan=name == "v"), name
    assert np.ma.getmaskarray(got["raw"]).sum() > 0 and np.asarray(got["raw"])[1] == b"a"
    blocks = list(fitstable.iter_columns(tmp_path / "t.fits", ["i"], rows=400))
    assert [len(b) for b in blocks] == [400, 400, 201]
    assert np.array_equal(np.concatenate([b["i"] for b in blocks]), table["i"])


def test_read_columns_names_what_it_cannot_read(tmp_path):
    Table({"a": np.arange(3)}).write(tmp_path / "t.fits")
    with pytest.raises(KeyError, match=r"no column\(s\) \['b'\]"):
        fitstable.read_columns(tmp_path / "t.fits", ["b"])
    scaled = fits.BinTableHDU.from_columns([fits.Column("u", "J", bzero=2**31, array=np.arange(3))])
    scaled.writeto(tmp_path / "scaled.fits")
    with pytest.raises(fitstable.Unsupported, match="'u' is scaled"):
        fitstable.read_columns(tmp_path / "scaled.fits", ["u"])
    with pytest.raises(fitstable.Unsupported, match="compressed"):
        fitstable.read_columns(tmp_path / "t.fits.gz")
