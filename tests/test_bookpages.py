"""Generated book pages (ravecnn_utils.book.pages): the parameters page and the link check."""

import textwrap

import pytest

from ravecnn_utils.book import pages as bookpages
from ravecnn_utils.book import notebooks as nbrun


def _notebook(tmp_path, parameters):
    path = tmp_path / "01_toy.py"
    path.write_text(textwrap.dedent('''\
        # %% [markdown]
        # # 01 — A toy

        # %% tags=["parameters"]
        ''') + textwrap.dedent(parameters) + "\n# %%\nprint(alpha)\n")
    return path


def test_parameters_table_reads_defaults_and_comments(tmp_path):
    path = _notebook(tmp_path, '''\
        alpha = 3            # a number (K)
        paths = ["a", "b"]   # a list, and a long comment
                             #   that goes on here
        beta = None
        ''')
    assert bookpages.parameters_table(path) == [
        ("alpha", "3", "a number (K)"),
        ("paths", '["a", "b"]', "a list, and a long comment that goes on here"),
        ("beta", "None", ""),
    ]


def test_every_notebook_has_a_documented_parameters_cell():
    """Each real notebook yields a non-empty table, every parameter with a description."""
    for path in nbrun.notebook_paths():
        rows = bookpages.parameters_table(path)
        assert rows, path.name
        assert all(comment for _, _, comment in rows), f"{path.name}: undocumented {[r[0] for r in rows if not r[2]]}"
    page = bookpages.parameters_page()
    assert page.count("\n## ") == len(nbrun.notebook_paths())


def test_parameters_table_refuses_a_notebook_without_parameters(tmp_path):
    path = tmp_path / "02_none.py"
    path.write_text("# %%\nx = 1\n")
    with pytest.raises(ValueError, match="02_none.py has no code cell tagged 'parameters'"):
        bookpages.parameters_table(path)


def test_broken_links_found_and_good_ones_not(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "index.html").write_text('<a href="sub/page.html#x">ok</a> <a href="missing.html">no</a>'
                                         '<a href="https://example.org/x.html">ext</a> <a href="#top">top</a>')
    (tmp_path / "sub" / "page.html").write_text('<a href="../index.html">up</a> <a href="../sub/gone.html">gone</a>')
    assert bookpages.broken_links(tmp_path) == ["index.html -> missing.html", "sub/page.html -> ../sub/gone.html"]
