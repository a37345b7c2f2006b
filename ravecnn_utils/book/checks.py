"""What a built page of the book must not show a reader (``make test-book`` runs these).

* stderr output blocks (progress bars, warnings);
* a table's dtype row (``str31 int64``), as astropy prints it;
* a table cut in the middle ("…" or "..." rows, as astropy and pandas cut long tables);
* a paper of the bibliography named in the text ("Guiglion et al. (2020)", "The Cannon")
  on a page that never links its citation;
* a figure narrower than its text (``narrow_figures``), or shrunk so much to fit it that its
  text becomes too small to read (``shrunk_figures``): widths measured in the browser with
  ``FIGURE_WIDTHS_JS``.

Each check reads one HTML page as text (or the browser's measurements of it) and returns what
it found, so that a test can say which page shows what.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from pybtex.database import parse_file

from .citations import surname

DTYPE = re.compile(r"^(str|int|uint|float|complex|bytes|bool|object)\d*$")
"""A cell or word that is a numpy dtype's name, as in astropy's dtype row."""

CUT = {"...", "…"}
"""What stands for the rows a long table hides."""

NAMED = {"The Cannon": "2015ApJ...808...16N"}
"""Methods named after their paper: the name in the text needs that paper's citation."""

CITATION_HREF = re.compile(r"#id\d+$")
"""Where a citation links to (sphinxcontrib-bibtex: the entry's anchor, with the entry as title)."""

SKIPPED_PAGES = ("genindex.html", "search.html")

MIN_FIGURE_WIDTH = 0.9
"""A figure must be drawn at least this fraction of its text column's width (CSS px)."""

MAX_FIGURE_SHRINK = 1.3
"""A figure's saved width (image px) may be at most this many times its drawn width (CSS px):
matplotlib's 10-pt text at 100 dpi stays above 7.5 pt on the page. The text column is 688 px,
so figures are saved at most about 8.5 inches wide (``plots.PAGE_WIDTH``)."""

FIGURE_WIDTHS_JS = """imgs => imgs.map(img => {
  const column = img.closest('article') || img.parentElement;
  const style = getComputedStyle(column);
  const text = column.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  return [img.getAttribute('src'), img.getBoundingClientRect().width, text, img.naturalWidth];
})"""
"""For Playwright's ``eval_on_selector_all("main img", …)``: per image, [src, drawn width, width
of the text column it sits in (the article, less its padding), in CSS pixels; the image's own
width, in its pixels]."""


class _Page(HTMLParser):
    """One page read once: its prose, output blocks, table rows, citation links and stderr
    blocks. Prose is the text outside <pre>, scripts, citation links and bibliography entries."""

    def __init__(self):
        super().__init__()
        self.prose, self.outputs, self.rows, self.cited, self.stderr = [], [], [], [], 0
        self._divs = []           # per open <div>: is it an output block, a bibliography entry?
        self._skip = 0            # inside <script>, <style> or a citation link
        self._pre = None          # text of the open <pre>
        self._row = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "div":
            if "stderr" in classes:
                self.stderr += 1
            self._divs.append(("output" in classes or "cell_output" in classes,
                               "citation" in classes or a.get("role") == "doc-biblioentry"))
        elif tag in ("script", "style"):
            self._skip += 1
        elif tag == "a" and a.get("title") and CITATION_HREF.search(a.get("href") or ""):
            self.cited.append(a.get("title") or "")
            self._skip += 1
        elif tag == "pre":
            self._pre = []
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "div" and self._divs:
            self._divs.pop()
        elif tag in ("script", "style") or tag == "a" and self._skip:
            self._skip = max(0, self._skip - 1)
        elif tag == "pre" and self._pre is not None:
            if any(output for output, _ in self._divs):
                self.outputs.append("".join(self._pre))
            self._pre = None
        elif tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._pre is not None:
            self._pre.append(data)
            return
        if self._cell is not None:
            self._cell.append(data)
        if not self._skip and not any(entry for _, entry in self._divs):
            self.prose.append(data)


def read_page(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def _is_dtype_row(cells) -> bool:
    """Every cell a dtype's name, and at least one with its size (``str31``, ``int64``)."""
    return bool(cells) and all(DTYPE.match(c) for c in cells) and any(c[-1].isdigit() for c in cells)


def dtype_rows(page: _Page) -> list[str]:
    """Table rows and printed lines made only of dtype names."""
    found = [" ".join(r) for r in page.rows if _is_dtype_row(r)]
    found += [" ".join(line.split()) for text in page.outputs for line in text.splitlines()
              if _is_dtype_row(line.split())]
    return found


def cut_tables(page: _Page) -> list[str]:
    """Table rows and printed lines that stand for hidden rows ("…", "...")."""
    found = [" ".join(r) for r in page.rows if any(c in CUT for c in r)]
    found += [" ".join(line.split()) for text in page.outputs for line in text.splitlines()
              if line.split() and all(w in CUT for w in line.split())]
    return found


def mentions(bib_path) -> list[tuple[re.Pattern, str, str]]:
    """For every entry of a BibTeX file: (pattern of the paper named in prose — "Ness et al.
    (2015)", "Kingma & Ba 2014", "Steinmetz et al. 2020a" — its first author, its year); and the
    names of ``NAMED``."""
    entries = parse_file(str(bib_path), bib_format="bibtex").entries
    out = []
    for key, e in entries.items():
        authors = [surname(p) for p in e.persons.get("author", [])]
        if not authors:
            continue
        year = e.fields.get("year", "")
        second = rf"|\s*(?:&|and)\s+{re.escape(authors[1])}" if len(authors) > 1 else ""
        pattern = re.compile(rf"\b{re.escape(authors[0])}(?:\s+et\s+al\.?{second})?,?\s*\(?{year}[a-z]?\b")
        out.append((pattern, authors[0], year))
        for name, named in NAMED.items():
            if named == key:
                out.append((re.compile(rf"\b{re.escape(name)}\b"), authors[0], year))
    return out


def uncited(page: _Page, known) -> list[str]:
    """Papers (``mentions``) named in the page's prose whose citation the page never links."""
    prose = re.sub(r"\s+", " ", "".join(page.prose))
    found = []
    for pattern, author, year in known:
        m = pattern.search(prose)
        if m and m.group(0) not in found and not any(author in title and year in title for title in page.cited):
            found.append(m.group(0))
    return found


def narrow_figures(widths, min_ratio=MIN_FIGURE_WIDTH) -> list[str]:
    """Figures drawn narrower than ``min_ratio`` of their text: ``widths`` is what
    ``FIGURE_WIDTHS_JS`` returns (src, drawn width, text width in CSS px, natural width). A figure saved narrower
    than the column is drawn at its own size beside an empty margin; a wider one is scaled down
    to the column (so figures are best saved at about the column's width, 7–8 inches at 100 dpi)."""
    return [f"figure narrower than its text: {src} ({drawn:.0f} of {text:.0f} px, {drawn / text:.0%})"
            for src, drawn, text, *_ in widths if text > 0 and drawn < min_ratio * text]


def shrunk_figures(widths, max_shrink=MAX_FIGURE_SHRINK) -> list[str]:
    """Figures whose image is more than ``max_shrink`` times wider (image px) than drawn (CSS px):
    ``widths`` is what ``FIGURE_WIDTHS_JS`` returns. A figure saved 12 inches wide at 100 dpi is
    drawn in the 688-px column at 57 % of its size, its 10-pt text at 5.7 pt."""
    return [f"figure shrunk {natural / drawn:.2f}× to fit its text, text too small to read: {src} "
            f"({natural} px drawn in {drawn:.0f} px; save it at most {max_shrink * drawn / 100:.1f} in wide at 100 dpi)"
            for src, drawn, _, natural in widths if drawn > 0 and natural > max_shrink * drawn]


def page_problems(html: str, known=()) -> list[str]:
    """Everything of this module's list that one page shows, one line each."""
    page = read_page(html)
    problems = [f"{page.stderr} stderr output block(s)"] if page.stderr else []
    problems += [f"dtype row: {r}" for r in dtype_rows(page)]
    problems += [f"table cut: {r}" for r in cut_tables(page)]
    problems += [f"names a paper without citing it: {m}" for m in uncited(page, known)]
    return problems


def site_problems(site, bib_path) -> list[str]:
    """``page: problem`` for every page of the built HTML book in ``site``."""
    site, known = Path(site), mentions(bib_path)
    found = []
    for path in sorted(site.rglob("*.html")):
        rel = path.relative_to(site).as_posix()
        if rel.startswith("_") or rel in SKIPPED_PAGES:
            continue
        found += [f"{rel}: {p}" for p in page_problems(path.read_text(encoding="utf-8"), known)]
    return found
