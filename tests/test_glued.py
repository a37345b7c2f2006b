"""The notebooks' summaries quote their results through glue, never typed in (issue 18).

Read from the jupytext sources, nothing executed: the markdown of each notebook's Summary must
type no result number (``book.glued.typed_numbers``), and every ``{glue:text}`key` `` its markdown
pastes must be glued by its code, or the book's build would fail on "glue key not found".
"""

import ast
import re

import pytest

from ravecnn_utils.book import glued
from ravecnn_utils.book.notebooks import notebook_paths, read_notebook
from ravecnn_utils.discs import separation_sentence

QUOTED = {
    "420,165": "spectra Guiglion et al. (2020, A&A 644, A168) parametrised with their network",
    "3,904": "stars of the real RAVE DR6 × APOGEE DR16 cross-match of Guiglion et al. (2020)",
    "44,226": "parameters of the slides' network, as the talk quotes them",
    "58,549": "parameters of the paper's network with photometry (Guiglion et al. 2020)",
    "4,600": "giants of RAVE iDR6 with SNR > 80 shown in the slides",
    "518,387": "spectra of RAVE DR6 (Steinmetz et al. 2020)",
}
"""Numbers quoted from the paper or the slides, which the prose may type: where each comes from."""

GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`([^`:]+)")
NOTEBOOKS = notebook_paths()


def summary(nb):
    """The markdown of the notebook's ``## Summary`` section (up to the next ``## `` heading)."""
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    match = re.search(r"^## Summary\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert match, "no '## Summary' section"
    return match.group(1)


def glued_names(nb):
    """The names the notebook's code glues: ``glued.glue("name", …)``, ``glued.glue_sentence("name", …)``
    and ``glued.glue_all(name=…)``."""
    names = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)):
                func = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
                if func in ("glue", "glue_sentence") and node.args and isinstance(node.args[0], ast.Constant):
                    names.add(node.args[0].value)
                elif func == "glue_all":
                    names.update(k.arg for k in node.keywords)
    return names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_summary_types_no_result_number(path):
    typed = glued.typed_numbers(summary(read_notebook(path)), allowed=QUOTED)
    assert not typed, f"{path.name}: the Summary types {typed}: glue them from the run ({{glue:text}}`name`)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_pasted_name_is_glued(path):
    nb = read_notebook(path)
    pasted = {m for c in nb.cells if c.cell_type == "markdown" for m in GLUE_ROLE.findall(c.source)}
    missing = pasted - glued_names(nb)
    assert not missing, f"{path.name}: markdown pastes {sorted(missing)}, which no code cell glues"


def test_every_summary_quotes_the_run():
    quoting = [p.name for p in NOTEBOOKS if GLUE_ROLE.search(summary(read_notebook(p)))]
    assert quoting == [p.name for p in NOTEBOOKS]


def test_the_detector_finds_typed_results_and_lets_the_rest_pass():
    typed = ("* The scatter is 85 K in Teff and 0.12 dex in log g; 46 % of the thick disc moves, "
             "printed above: 1,234 giants.")
    assert glued.typed_numbers(typed) == ["85", "0.12", "46", "1,234"]
    fine = ("* Section 3 and notebooks 02 and 04: giants with SNR > 80 and |z| < 1, [M/H] < −1, "
            "Ca II 8542 Å, 8410–8795 Å; DR16, 2MASS, iDR6; Ness et al. (2015); {cite:p}`2020A&A...644A.168G`; "
            "`snr_min = 80`; [docs](https://example.org/v1.2); {glue:text}`n_3` spectra; 420,165 spectra.")
    assert glued.typed_numbers(fine, allowed=QUOTED) == []
    assert glued.typed_numbers("420,165 spectra") == ["420,165"]  # only an allowed number passes


def test_the_formatters():
    assert glued.count(12345.0) == "12,345"
    assert glued.percent(0.456) == "46\u00a0%" and glued.percent(float("nan")) == "n/a"
    assert glued.value(0.01234, "dex") == "0.012\u00a0dex" and glued.value(85.2, "K") == "85\u00a0K"
    assert glued.value(1e-5) == "0.000010"  # never in exponent form
    assert glued.seconds(5.23) == "5.2\u00a0s" and glued.seconds(204) == "3.4\u00a0min"
    assert glued.labelled({"teff": 85.3, "alpha_m": 0.0412}) == "Teff 85\u00a0K, [α/M] 0.041\u00a0dex"
    assert glued.matches(44226, 44226) == "as published"
    assert glued.matches(44227, 44226) == "against 44,226 published"
    assert glued.choose(0.9, [(0.8, "high"), (0.5, "mid")], "low") == "high"
    assert glued.choose(0.6, [(0.8, "high"), (0.5, "mid")], "low") == "mid"
    assert glued.choose(float("nan"), [(0.8, "high")], "low") == "low"
    with pytest.raises(ValueError, match="glue name"):
        glued.glue("bad:name", "x")


def test_the_disc_sentence_follows_the_measured_fraction():
    assert "stay apart" in separation_sentence(0.9, 100)
    said = separation_sentence(0.54, 1200)  # issue 18: 46 % of the true thick-disc giants on the thin side
    assert "are not apart" in said and "54\u00a0%" in said and "46\u00a0%" in said and "1,200" in said
    assert "no sequence of its own" in separation_sentence(0.3, 100)
    assert "not measured" in separation_sentence(float("nan"), 0)
