"""Author–year citations for the book, as astronomers write them (a Sphinx extension).

``_config.yml`` loads this module (``sphinx: extra_extensions``). It registers

* the pybtex label style ``author_year`` — "Ness et al. 2015", "Kingma & Ba 2014",
  "Steinmetz et al. 2020a"/"2020b" when two papers share authors and year — so the reference
  list shows readable labels instead of alpha keys such as ``[GMQ+20]``;
* the bibliography style ``ravecnn`` (pybtex's ``plain``, sorted by author and year, with
  those labels: ``bibtex_default_style``);
* the citation style ``ravecnn`` (``bibtex_reference_style``): ``{cite:p}`` gives
  "(Guiglion et al. 2020; Ness et al. 2015)", ``{cite:t}`` gives "Ness et al. (2015)" — the
  same label as in the list, so 2020a and 2020b stay apart.
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, List

import pybtex.plugin
from pybtex.richtext import Text
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.template import join, node
from sphinxcontrib.bibtex.plugin import register_plugin
from sphinxcontrib.bibtex.style.referencing import BaseReferenceStyle, BracketStyle, GroupReferenceStyle
from sphinxcontrib.bibtex.style.template import join2, post_text, pre_text, reference

NAME = "ravecnn"


def surname(person) -> str:
    """A person's last name(s) as plain text (LaTeX accents decoded, braces dropped)."""
    return Text.from_latex(" ".join(person.prelast_names + person.last_names)).render_as("text")


def author_year(persons, year) -> str:
    """The label of a paper: "Ness 2015", "Kingma & Ba 2014", "Ness et al. 2015"."""
    names = [surname(p) for p in persons]
    if len(names) == 2 and "others" not in names:
        who = f"{names[0]} & {names[1]}"
    elif len(names) >= 2:
        who = f"{names[0]} et al."
    else:
        who = names[0] if names else "Anonymous"
    return f"{who} {year}"


class AuthorYearLabels(BaseLabelStyle):
    """Labels "First et al. YEAR"; where two entries would share one, a, b, ... in the order of
    their keys (ADS bibcodes: the order of publication)."""

    def format_labels(self, sorted_entries):
        entries = list(sorted_entries)
        labels = [author_year(e.persons.get("author", []), e.fields.get("year", "n.d.")) for e in entries]
        count = Counter(labels)
        for label, e in zip(labels, entries):
            if count[label] == 1:
                yield label
            else:
                keys = sorted(f.key for f, other in zip(entries, labels) if other == label)
                yield label + chr(ord("a") + keys.index(e.key))


class BibliographyStyle(PlainStyle):
    """pybtex's plain style with author–year labels."""

    default_label_style = "author_year"
    default_sorting_style = "author_year_title"


@node
def _label_part(children, data, part):
    """The authors (part 0) or the year (part 1) of the entry's label."""
    return Text(data["formatted_entry"].label.rsplit(" ", 1)[part])


def _round() -> BracketStyle:
    return BracketStyle(left="(", right=")", sep="; ")


@dataclass
class _Parenthetical(BaseReferenceStyle):
    bracket: BracketStyle = field(default_factory=_round)

    def role_names(self) -> Iterable[str]:
        return ["p", "ps", "alp", "alps"]

    def outer(self, role_name: str, children: List[Text]):
        return self.bracket.outer(children, brackets="al" not in role_name)

    def inner(self, role_name: str):
        return join2(sep1=" ", sep2=", ")[pre_text, reference[_label_part(part=0), " ", _label_part(part=1)],
                                          post_text]


@dataclass
class _Textual(BaseReferenceStyle):
    bracket: BracketStyle = field(default_factory=lambda: BracketStyle(left="(", right=")", sep=", "))

    def role_names(self) -> Iterable[str]:
        return ["t", "ts", "ct", "cts"]

    def outer(self, role_name: str, children: List[Text]):
        return self.bracket.outer(children, brackets=False, capfirst="c" in role_name)

    def inner(self, role_name: str):
        return join(sep=" ")[_label_part(part=0),
                             join["(", join2(sep1=" ", sep2=", ")[pre_text, reference[_label_part(part=1)],
                                                                  post_text], ")"]]


@dataclass
class ReferenceStyle(GroupReferenceStyle):
    """``{cite:p}`` → "(Ness et al. 2015)", ``{cite:t}`` → "Ness et al. (2015)"."""

    def __post_init__(self):
        self.styles.extend([_Parenthetical(), _Textual()])
        super().__post_init__()


def register() -> None:
    """Register the label, bibliography and citation styles (idempotent)."""
    pybtex.plugin.register_plugin("pybtex.style.labels", "author_year", AuthorYearLabels, force=True)
    pybtex.plugin.register_plugin("pybtex.style.formatting", NAME, BibliographyStyle, force=True)
    register_plugin("sphinxcontrib.bibtex.style.referencing", NAME, ReferenceStyle, force=True)


def setup(app):
    """Sphinx entry point."""
    register()
    return {"parallel_read_safe": True, "parallel_write_safe": True}
