"""ravecnn_utils.book.checks: what a built page must not show, found on small HTML pages."""

from pathlib import Path

from ravecnn_utils.book import checks

BIB = Path(__file__).resolve().parents[1] / "book" / "references.bib"
KNOWN = checks.mentions(BIB)

OUTPUT = '<div class="cell_output docutils container"><div class="output {kind}"><pre>{text}</pre></div></div>'
NESS = ('<a class="reference internal" href="../references.html#id9" title="M. Ness, D. W. Hogg, '
        'and others. The Cannon: a data-driven approach. The Astrophysical Journal, 808:16, 2015.">{text}</a>')


def problems(body):
    return checks.page_problems(f"<html><body><main>{body}</main></body></html>", KNOWN)


def test_a_clean_page_has_no_problems():
    body = ("<p>The network of Guiglion and the labels.</p>"
            + OUTPUT.format(kind="stream", text="42 stars\n")
            + "<table><tr><th>label</th><th>n</th></tr><tr><td>teff</td><td>3</td></tr></table>"
            + f"<p>As {NESS.format(text='Ness et al. 2015')} showed, The Cannon works.</p>"
            + "<pre>x = y[...]\n    ...\n</pre>")  # code, not an output
    assert problems(body) == []


def test_stderr_blocks_are_found():
    assert problems(OUTPUT.format(kind="stderr", text="peers: 100%|███| 5/5")) == ["1 stderr output block(s)"]


def test_dtype_rows_are_found_in_html_and_text_tables():
    html = "<table><thead><tr><th>str3</th><th>float64</th></tr></thead><tr><td>a</td><td>1.0</td></tr></table>"
    text = OUTPUT.format(kind="text_plain", text="label  x\nstr31 int64\n----- -----\n  a     1\n")
    assert problems(html) == ["dtype row: str3 float64"]
    assert problems(text) == ["dtype row: str31 int64"]
    assert problems("<table><tr><td>bool</td><td>str</td></tr></table>") == []  # words, not dtypes


def test_cut_tables_are_found():
    html = "<table><tr><td>l1</td><td>2</td></tr><tr><td>...</td><td>...</td></tr></table>"
    text = OUTPUT.format(kind="text_plain", text="  a   1\n ...  ...\n  z  26\n")
    assert problems(html) == ["table cut: ... ..."]
    assert problems(text) == ["table cut: ... ..."]
    assert problems("<table><tr><td>…</td><td>3</td></tr></table>") == ["table cut: … 3"]


def test_a_paper_named_without_its_citation_is_found():
    assert problems("<p>The network of Guiglion et al. (2020) reads spectra.</p>") == [
        "names a paper without citing it: Guiglion et al. (2020"]
    assert problems("<p>Adam (Kingma &amp; Ba 2014) trains it.</p>") == [
        "names a paper without citing it: Kingma & Ba 2014"]
    assert problems("<p>Steinmetz et al. 2020a</p>") == ["names a paper without citing it: Steinmetz et al. 2020a"]
    assert problems("<p>and The Cannon.</p>") == ["names a paper without citing it: The Cannon"]
    # cited anywhere on the page: fine; the citation's own text is not a mention
    assert problems(f"<p>The Cannon of {NESS.format(text='Ness et al. (2015)')}.</p>") == []
    assert problems(f"<p>Ness et al. ({NESS.format(text='2015')})</p>") == []


def test_bibliography_entries_are_not_mentions():
    entry = '<div class="citation" role="doc-biblioentry"><p>M. Ness. The Cannon, 2015.</p></div>'
    assert problems(entry) == []


def test_site_problems_name_the_page(tmp_path):
    (tmp_path / "executed").mkdir()
    (tmp_path / "executed" / "06.html").write_text(OUTPUT.format(kind="stderr", text="x"))
    (tmp_path / "search.html").write_text("<p>Ness et al. 2015</p>")
    assert checks.site_problems(tmp_path, BIB) == ["executed/06.html: 1 stderr output block(s)"]


def test_narrow_figures_are_found():
    widths = [["wide.png", 688.0, 688.0, 850], ["scaled.png", 640.0, 688.0, 640], ["small.png", 420.0, 688.0, 420],
              ["hidden.png", 0.0, 0.0, 0]]
    found = checks.narrow_figures(widths)
    assert found == ["figure narrower than its text: small.png (420 of 688 px, 61%)"]
    assert len(checks.narrow_figures(widths, min_ratio=0.95)) == 2


def test_shrunk_figures_are_found():
    widths = [["page.png", 688.0, 688.0, 850], ["small.png", 420.0, 688.0, 420],
              ["strip.png", 688.0, 688.0, 1500], ["hidden.png", 0.0, 0.0, 0]]
    found = checks.shrunk_figures(widths)
    assert found == ["figure shrunk 2.18× to fit its text, text too small to read: strip.png "
                     "(1500 px drawn in 688 px; save it at most 8.9 in wide at 100 dpi)"]
    assert len(checks.shrunk_figures(widths, max_shrink=1.2)) == 2
