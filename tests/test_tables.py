"""ravecnn_utils.tables: tables shown whole, formatted, without a dtype row."""

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table

from ravecnn_utils.tables import MISSING, format_value, readable


def test_format_value_rounds_floats_for_people():
    assert format_value(0.9688494176768928) == "0.969"
    assert format_value(12.3456) == "12.3"
    assert format_value(1.0) == "1.00"
    assert format_value(125.3) == "125"
    assert format_value(4600.0) == "4,600"
    assert format_value(0.0) == "0"
    assert format_value(2.5e-5) == "2.50e-05"
    assert format_value(np.nan) == MISSING
    assert format_value(np.int64(4600)) == "4600"
    assert format_value(np.True_) == "True"
    assert format_value(b"Ca II") == "Ca II"


def test_readable_shows_every_row_without_dtypes():
    n = 46
    t = Table({"label": [f"l{i}" for i in range(n)], "scatter": np.linspace(0.1, 0.9, n),
               "spectra": np.arange(n)})
    t["scatter"].unit = "dex"
    r = readable(t, names={"spectra": "spectra used"})
    html, text = r._repr_html_(), str(r)
    assert html.count("<tr>") == n + 1 and text.count("\n") == n + 1  # header (+ rule) and all rows
    for shown in (html, text):
        assert "…" not in shown and "..." not in shown
        assert "float64" not in shown and "int64" not in shown and "str" not in shown
    assert "scatter [dex]" in html and "spectra used" in text
    assert "l45" in html and "0.900" in html
    assert 'style="text-align: right">0.100</td>' in html  # numbers right-aligned
    assert text.splitlines()[2].split() == ["l0", "0.100", "0"]


def test_readable_formats_masks_and_escapes():
    t = Table({"name": ["<b>", "x"], "v": MaskedColumn([1.23456, 2.0], mask=[False, True])})
    t["v"].info.format = ".2f"
    r = readable(t)
    assert "&lt;b&gt;" in r._repr_html_()
    assert str(r).splitlines()[2:] == ["<b>   1.23", f"x        {MISSING}"]
    assert "1.2%" in str(readable(Table({"f": [0.0123]}), formats={"f": ".1%"}))
    assert str(readable(Table({"f": [np.nan]}), formats={"f": ".3g"})).splitlines()[2] == MISSING


def test_readable_of_no_table_is_nothing():
    assert readable(None) is None


def test_readable_names_a_missing_column():
    with pytest.raises(KeyError, match="no column 'stars'.*label"):
        readable(Table({"label": ["a"]}), names={"stars": "spectra"})
