"""Numbers for the notebooks' prose, computed in the run and glued (myst-nb) into the text.

A notebook glues a short string under a name (``glue``); its markdown pastes it with
``{glue:text}`name` `` (a sentence: ``glue_sentence``, pasted with ``{glue:md}`name` ``), so
that a summary quotes what this run measured, not a number typed once. The formatters write the strings the text quotes: ``count`` (12,345), ``percent``
(12 %), ``value`` (0.123 dex, 85 K), ``labelled`` (Teff 85 K, log g 0.12 dex) and ``seconds``
(12 s, 3.4 min). ``choose`` picks a
sentence by a measured value, so that a statement whose truth depends on the run (the discs
stay apart, or not) is made by the code that measured it.
"""

from __future__ import annotations

import math
import re

from ..labels import TEXT, UNITS

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
"""A glue name: ``{glue:text}`` splits on ``:`` and ``::``, so a name is a plain identifier."""

NBSP = "\u00a0"
"""Between a number and its unit, so that a line never breaks between them."""


def glue(name: str, text) -> str:
    """Store ``text`` (made a str) in the notebook under ``name``, hidden from the cell's output,
    for ``{glue:text}`name` `` in a markdown cell; returns the text."""
    if not NAME.match(name):
        raise ValueError(f"glue name {name!r}: use letters, digits and _ only (no ':')")
    from myst_nb import glue as myst_glue  # the book's own glue; imported only where it is used

    text = str(text)
    myst_glue(name, text, display=False)
    return text


def glue_sentence(name: str, text: str) -> str:
    """Store a whole sentence (Markdown) under ``name`` for ``{glue:md}`name` ``: it reads as the
    text around it, where ``{glue:text}`` sets a pasted number in bold; returns the text."""
    if not NAME.match(name):
        raise ValueError(f"glue name {name!r}: use letters, digits and _ only (no ':')")
    from IPython.display import Markdown
    from myst_nb import glue as myst_glue

    myst_glue(name, Markdown(str(text)), display=False)
    return str(text)


def glue_all(**texts) -> dict:
    """``glue`` every keyword: ``glue_all(n_spectra=count(n), ...)``; returns the texts."""
    return {name: glue(name, text) for name, text in texts.items()}


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def count(n) -> str:
    """An integer with thousands separators: 12345 -> '12,345'."""
    return f"{int(n):,}"


def percent(fraction, digits: int = 0) -> str:
    """A fraction (0–1) as a percentage: 0.123 -> '12 %'; 'n/a' when not finite."""
    if not _finite(fraction):
        return "n/a"
    return f"{100 * float(fraction):.{digits}f}{NBSP}%"


def value(x, unit: str = "", digits: int = 2) -> str:
    """A measured number to ``digits`` significant digits, with its unit: 0.1234, 'dex' ->
    '0.12 dex', 85.2, 'K' -> '85 K'; 'n/a' when not finite. Never in exponent form."""
    if not _finite(x):
        return "n/a"
    x = float(x)
    if x == 0:
        text = "0"
    else:
        decimals = max(digits - 1 - math.floor(math.log10(abs(x))), 0)
        text = f"{round(x, decimals):,.{decimals}f}"
    return f"{text}{NBSP}{unit}" if unit else text


def seconds(s) -> str:
    """A duration in s: 12.3 -> '12 s', 204 -> '3.4 min', 7300 -> '2.0 h'."""
    s = float(s)
    if s < 120:
        return f"{s:.2g}{NBSP}s" if s < 10 else f"{s:.0f}{NBSP}s"
    if s < 7200:
        return f"{s / 60:.1f}{NBSP}min"
    return f"{s / 3600:.1f}{NBSP}h"


def labelled(values: dict, digits: int = 2) -> str:
    """Label values with their names and units: {'teff': 85.2, 'logg': 0.123} ->
    'Teff 85 K, log g 0.12 dex' (``labels.TEXT``, ``labels.UNITS``)."""
    return ", ".join(f"{TEXT[name]} {value(x, UNITS[name], digits)}" for name, x in values.items())


def matches(n, published) -> str:
    """Whether a count of ours is the published one: 'as published', or 'against 1,234 published'."""
    return "as published" if n == published else f"against {count(published)} published"


def choose(x, cases, otherwise: str) -> str:
    """The sentence of the first ``(threshold, sentence)`` of ``cases`` with ``x ≥ threshold``
    (list the thresholds from high to low), else ``otherwise`` (also when ``x`` is not finite)."""
    if _finite(x):
        for threshold, sentence in cases:
            if float(x) >= threshold:
                return sentence
    return otherwise


# What a notebook's prose may type (everything else that is a number must come through glue).
_STRIPPED = re.compile(
    r"\{[\w:.-]+\}`[^`]*`"              # roles: {glue:text}`key`, {cite:p}`2020A&A...644A.168G`
    r"|`[^`]*`"                         # inline code: `snr_min`, `data/guiglion2020/`
    r"|\]\([^)]*\)"                     # link targets: [text](https://…)
    r"|\b(?:[Ss]ections?|[Nn]otebooks?|[Cc]hapters?|[Pp]arts?)\s+\d+(?:\s*(?:,|and|–|-)\s*\d+)*"  # section 3, notebooks 02 and 04
    r"|[<>≤≥=]\s*[−-]?\d[\d,.]*"          # selection cuts: SNR > 80, |z| < 1, [M/H] < −1
    r"|\d[\d,.]*(?:\s*[–-]\s*\d[\d,.]*)?\s*Å"  # wavelengths: 8542 Å, 8410–8795 Å
    r"|et al\.,?\s+\(?\d{4}"            # citation years: Ness et al. (2015)
    r"|\w*[^\W\d_]\w*"                  # words with letters, digits attached: DR16, 2MASS, iDR6, H100
)
_NUMBER = re.compile(r"\d[\d,.]*\d|\d")


def typed_numbers(markdown: str, allowed=()) -> list[str]:
    """The numbers typed in ``markdown`` that are none of what prose may type: glued values, code,
    links, section and notebook numbers, selection cuts (``SNR > 80``), wavelengths (``8542 Å``),
    citation years, names with digits (DR16, 2MASS) and the strings of ``allowed`` (numbers quoted
    from the paper or the slides). An empty list means every result number comes from the run."""
    text = markdown
    for quoted in sorted(allowed, key=len, reverse=True):
        text = text.replace(quoted, " ")
    text = _STRIPPED.sub(" ", text)
    return _NUMBER.findall(text)
