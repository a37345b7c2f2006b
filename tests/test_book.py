"""The book as a reader sees it: built from the smoke profile, opened in headless Chromium.

Run with ``make test-book`` (installs Chromium where it can, and Playwright). Every notebook
page must load in the browser and show its figures (images drawn with a non-zero size); no
link of any page may lead to a page of the book that does not exist; no page may show an
stderr block, a table's dtype row or a table cut around "…", or name a paper of the
bibliography without linking its citation, or draw a figure narrower than 0.9 of its text column
or shrink one more than 1.3 times to fit it (``ravecnn_utils.book.checks``; the browser's window
is Playwright's default 1280 × 720 px, a laptop's). A full-page screenshot of every page is kept in ``_build/screens/`` for a person to
look at. Marked ``book``: not part of ``make test``.
"""

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urljoin

import pytest

from ravecnn_utils.book import checks
from ravecnn_utils.book import notebooks as nbrun
from ravecnn_utils.book.pages import broken_links
from ravecnn_utils.paths import REPO_ROOT

pytestmark = [pytest.mark.book, pytest.mark.slow]

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The smoke book built warning-free (-W -n) into a temporary folder: its HTML root."""
    root = tmp_path_factory.mktemp("book")
    shutil.copytree(REPO_ROOT / "book", root / "book", ignore=shutil.ignore_patterns("executed", "_build"))
    nbrun.run_all("smoke", root / "book" / "executed", progress_bar=False,
                  overrides={"survey_dir": str(root / "sim"), "products_dir": str(root / "products")})
    run = functools.partial(subprocess.run, check=True, cwd=root)
    run([sys.executable, "-m", "ravecnn_utils.book.pages", str(root / "book" / "parameters.md")])
    run([str(Path(sys.executable).parent / "jupyter-book"), "build", "book", "--config", str(REPO_ROOT / "_config.yml"),
         "--toc", str(root / "book" / "_toc.yml"), "--path-output", ".", "--all", "-W", "-n"])
    return root / "_build" / "html"


@pytest.fixture(scope="module")
def server(site):
    """The HTML served on localhost (as a reader's browser would fetch it)."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium (make test-book does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


NOTEBOOK_PAGES = [f"executed/{p.stem}.html" for p in nbrun.notebook_paths()]
SCREENS = REPO_ROOT / "_build" / "screens"


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_notebook_page_has_its_figures(page, server, browser):
    """The page loads (HTTP 200), has a title, and every image has been drawn with a non-zero size."""
    tab = browser.new_page()
    response = tab.goto(urljoin(server, page), wait_until="load")
    assert response is not None and response.status == 200, page
    assert tab.locator("main h1").count() >= 1, f"{page}: no title"
    sizes = tab.eval_on_selector_all("main img", "imgs => imgs.map(i => [i.src, i.complete, i.naturalWidth])")
    assert sizes, f"{page}: no figure"
    broken = [src for src, complete, width in sizes if not complete or width == 0]
    assert not broken, f"{page}: images not drawn: {broken}"
    tab.close()


def test_every_page_screenshot_and_figure_widths(site, server, browser):
    """Every page of the book saved as a full-page PNG in _build/screens/ (executed/01_data.html →
    executed__01_data.png), and no figure on any page drawn narrower than 0.9 of its text or shrunk
    more than 1.3 times to fit it (its text too small to read)."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    narrow = []
    tab = browser.new_page()
    for path in sorted(site.rglob("*.html")):
        rel = path.relative_to(site).as_posix()
        if rel.startswith("_") or rel in checks.SKIPPED_PAGES:
            continue
        tab.goto(urljoin(server, rel), wait_until="load")
        tab.screenshot(path=str(SCREENS / (rel.removesuffix(".html").replace("/", "__") + ".png")), full_page=True)
        widths = tab.eval_on_selector_all("main img", checks.FIGURE_WIDTHS_JS)
        narrow += [f"{rel}: {p}" for p in checks.narrow_figures(widths) + checks.shrunk_figures(widths)]
    tab.close()
    assert not narrow, "\n".join(narrow)


def test_no_broken_internal_links(site):
    """Every link of every page that stays inside the book leads to a page or file that exists."""
    broken = broken_links(site)
    assert not broken, "broken links:\n" + "\n".join(broken)


@pytest.fixture(scope="module")
def page_problems(site):
    """Every page's problems (``checks.site_problems``), read once."""
    return checks.site_problems(site, site.parents[1] / "book" / "references.bib")


@pytest.mark.parametrize("kind", ["stderr output block", "dtype row", "table cut", "names a paper without citing it"])
def test_no_page_shows(kind, page_problems):
    """No stderr blocks (progress bars, warnings), dtype rows, tables cut around "…", or papers of
    the bibliography named in the text without their citation link, on any page."""
    found = [p for p in page_problems if kind in p]
    assert not found, f"{kind}:\n" + "\n".join(found)
