"""Book pages generated from the notebooks themselves (never retyped): the parameters page;
and a check of the built book's internal links.

    python -m ravecnn_utils.book.pages book/parameters.md

Every notebook's ``parameters`` cell is read (names, default values as written, the comment
after each, continued on following comment lines) together with the ``smoke`` profile's
overrides, and written as one Markdown page with a table per notebook.
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

from .notebooks import NOTEBOOKS_DIR, load_profile, notebook_paths, read_notebook
from .parameters import parameters_table


def _cell(text: str) -> str:
    """Text safe in a Markdown table cell (pipes and angle brackets escaped)."""
    return text.replace("|", "\\|").replace("<", "\\<")


def parameters_page(notebooks_dir=NOTEBOOKS_DIR, smoke_profile="smoke") -> str:
    """The Markdown of the 'Rerun with your own parameters' page."""
    smoke = load_profile(smoke_profile)
    out = [
        "# Rerun with your own parameters",
        "",
        "Every notebook starts with a cell tagged `parameters`; papermill replaces its values. This",
        "page is generated from those cells (`python -m ravecnn_utils.book.pages`) each time the book",
        "is built, so it always matches the notebooks. Rerun one notebook with new values and rebuild",
        "the book:",
        "",
        "```sh",
        'make rerun NOTEBOOK=04_training PARAMS="-p n_models 10 -p epochs 200"',
        "```",
        "",
        "or, without make, `.venv/bin/python -m ravecnn_utils.book --profile full --only 04_training",
        "-p n_models 10` (values are YAML; the executed notebook goes to `book/executed/`). Relative",
        "paths are relative to `notebooks/`. The column *smoke* shows what the quick profile of",
        "`notebooks/profiles.yml` (`make book PROFILE=smoke`, the tests) changes.",
        "",
    ]
    for path in notebook_paths(notebooks_dir):
        title = next((line.lstrip("# ").strip() for line in read_notebook(path).cells[0].source.splitlines()
                      if line.startswith("# ")), path.stem)
        out += [f"## {title}", "", f"`notebooks/{path.name}`", "",
                "| parameter | default | smoke | meaning |", "|---|---|---|---|"]
        overrides = smoke.get(path.stem, {})
        for name, default, comment in parameters_table(path):
            value = f"`{overrides[name]}`" if name in overrides else ""
            out.append(f"| `{name}` | `{_cell(default)}` | {_cell(value)} | {_cell(comment)} |")
        out.append("")
    return "\n".join(out)


class _Links(HTMLParser):
    """The href of every <a> of an HTML page."""

    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def broken_links(site) -> list[str]:
    """Links of the built HTML book in ``site`` that stay inside it but lead to no file:
    ``"page -> href"`` strings, sorted (anchors and external sites are not checked)."""
    site = Path(site)
    broken = set()
    for path in site.rglob("*.html"):
        page = path.relative_to(site).as_posix()
        parser = _Links()
        parser.feed(path.read_text(encoding="utf-8"))
        for href in parser.hrefs:
            url = urlparse(urljoin(f"http://book.invalid/{page}", href))
            if url.netloc != "book.invalid" or not url.path.strip("/"):
                continue  # another site, mailto:, or the site root
            if not (site / unquote(url.path).lstrip("/")).is_file():
                broken.add(f"{page} -> {href}")
    return sorted(broken)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m ravecnn_utils.book.pages OUTPUT.md", file=sys.stderr)
        return 2
    Path(argv[0]).write_text(parameters_page(), encoding="utf-8")
    print(argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
