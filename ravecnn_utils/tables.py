"""Tables for people: an astropy Table shown whole, formatted, without its dtype row.

``readable(table)`` is what a notebook displays instead of the table itself (Jupyter shows the
returned object as an HTML table, ``print`` as aligned text). Every row is shown — astropy and
pandas cut long tables to a head and a tail around "…" — floats get a few significant digits
instead of their full ``repr``, missing values a dash, and headers their unit.
"""

from html import escape

import numpy as np

MISSING = "—"


def format_value(value):
    """A number as a person reads it: integers as they are; floats with three significant digits
    below 100 (0.0312, 0.969, 12.3, 1.00), rounded to units above (125, 4,600); NaN as a dash."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not np.isfinite(v):
            return MISSING if np.isnan(v) else str(v)
        if v == 0 or abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) < 1e-3:
            return f"{v:.2e}"
        return f"{v:#.3g}".rstrip(".")
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def _cells(column, fmt):
    """The column's values as strings: ``fmt`` (a format spec such as ".2f", or a function), else
    the column's own ``format`` where it has one, else ``format_value``; missing and NaN: a dash."""
    mask = np.ma.getmaskarray(column)
    values = np.ma.getdata(column)
    fmt = fmt if fmt is not None else getattr(column.info, "format", None)
    if isinstance(fmt, str):
        spec = fmt[2:-1] if fmt.startswith("{:") else fmt.lstrip("%")
        fmt = lambda v, spec=spec: format(v, spec)  # noqa: E731
    out = []
    for v, m in zip(values, mask):
        if np.ndim(m) or np.ndim(v):  # a vector per row
            out.append(", ".join(format_value(x) for x in np.ravel(v)))
        elif m or (isinstance(v, (float, np.floating)) and np.isnan(v)):
            out.append(MISSING)
        else:
            out.append(fmt(v) if fmt else format_value(v))
    return out


def _numeric(column):
    return column.dtype.kind in "iufb"


class Readable:
    """A formatted table: ``header`` (column titles), ``rows`` (lists of strings), ``numeric``
    (right-aligned columns); HTML for Jupyter, aligned text for ``print``."""

    def __init__(self, header, rows, numeric):
        self.header, self.rows, self.numeric = header, rows, numeric

    def _repr_html_(self):
        def row(cells, tag):
            return "<tr>" + "".join(
                f'<{tag} style="text-align: {"right" if num else "left"}">{escape(c)}</{tag}>'
                for c, num in zip(cells, self.numeric)) + "</tr>"
        return ('<table class="dataframe ravecnn-table">\n<thead>' + row(self.header, "th") + "</thead>\n<tbody>\n"
                + "\n".join(row(r, "td") for r in self.rows) + "\n</tbody>\n</table>")

    def __str__(self):
        widths = [max(len(c) for c in col) for col in zip(self.header, *self.rows)]

        def line(cells):
            return "  ".join(c.rjust(w) if num else c.ljust(w)
                             for c, w, num in zip(cells, widths, self.numeric)).rstrip()
        return "\n".join([line(self.header), "  ".join("-" * w for w in widths)] + [line(r) for r in self.rows])

    __repr__ = __str__


def readable(table, formats=None, names=None):
    """``table`` (an astropy Table) as a :class:`Readable`: all rows, no dtype row.

    ``formats`` maps column name -> format spec (".2f", "{:.1%}", "%d") or function of the value;
    ``names`` maps column name -> the title to show (the unit, if any, is added in brackets).
    ``None`` (a table this run has not made) gives ``None``: Jupyter shows nothing.
    """
    if table is None:
        return None
    formats, names = dict(formats or {}), dict(names or {})
    unknown = sorted((set(formats) | set(names)) - set(table.colnames))
    if unknown:
        raise KeyError(f"readable: no column {', '.join(map(repr, unknown))} in the table "
                       f"(it has {', '.join(table.colnames)})")
    header, columns, numeric = [], [], []
    for name in table.colnames:
        col = table[name]
        unit = f" [{col.unit}]" if getattr(col, "unit", None) is not None and str(col.unit) else ""
        header.append(names.get(name, name) + unit)
        columns.append(_cells(col, formats.get(name)))
        numeric.append(_numeric(col))
    return Readable(header, [list(r) for r in zip(*columns)], numeric)
