"""Castelli & Kurucz (2003) ATLAS9 model atmospheres: read the grids, interpolate one model.

The grids are the ``a[mp]XXk2.dat`` files (solar-scaled abundances, microturbulence 2 km/s,
[M/H] from −5.0 to +1.0), one file per [M/H], each holding models on a Teff (K) × log g
(dex) grid. They are not in this repository: ``make emulator`` asks for their folder
(``KURUCZ=``; see ``data/emulator/README.md``). Every ATLAS9 model of these grids has the
same 72 depths in Rosseland optical depth, so a model between grid points is interpolated
depth by depth: trilinearly in (Teff, log g, [M/H]), in log of column mass, pressure,
electron density and opacity, linearly in temperature.
"""

import re
from pathlib import Path

import numpy as np

COLUMNS = ("rhox", "t", "p", "xne", "abross")
"""The five columns of a model kept for MOOG: column mass (g cm⁻²), T (K), gas pressure
(dyn cm⁻²), electron density (cm⁻³), Rosseland mean opacity (cm² g⁻¹)."""

_LOG = [0, 2, 3, 4]
_NAME = re.compile(r"a([mp])(\d\d)k2\.dat$")


def metallicity_of(path):
    """[M/H] (dex) from a grid file's name: ``am05k2.dat`` → −0.5, ``ap02k2.dat`` → +0.2."""
    match = _NAME.search(Path(path).name)
    if match is None:
        raise ValueError(f"{path}: not an ATLAS9 grid file name (a[mp]XXk2.dat)")
    value = int(match.group(2)) / 10
    return value if match.group(1) == "p" else -value


def read_grid_file(path):
    """Every model of one grid file: {(Teff K, log g): array (n_depths, 5) of ``COLUMNS``}.

    Some copies of these files lack the first character of each line (``EFF`` for ``TEFF``);
    both spellings are read.
    """
    lines = Path(path).read_text().splitlines()
    models, key, i = {}, None, 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip("T").startswith("EFF "):
            fields = line.split()
            key = (float(fields[1]), float(fields[3]))
        elif "DECK6" in line[:12]:
            if key is None:
                raise ValueError(f"{path}, line {i + 1}: a model's depths before its TEFF line")
            n = int(line.split()[2])
            rows = [row.split()[:5] for row in lines[i + 1:i + 1 + n]]
            models[key] = np.array(rows, float)
            i += n
        i += 1
    if not models:
        raise ValueError(f"{path}: no model atmosphere found (expected TEFF and READ DECK6 lines)")
    return models


def _bracket(nodes, x, what):
    nodes = np.asarray(nodes)
    if not nodes[0] <= x <= nodes[-1]:
        raise ValueError(f"{what} = {x} lies outside the model grid ({nodes[0]}–{nodes[-1]})")
    j = int(np.clip(np.searchsorted(nodes, x, side="right") - 1, 0, len(nodes) - 2))
    return ((nodes[j], (nodes[j + 1] - x) / (nodes[j + 1] - nodes[j])),
            (nodes[j + 1], (x - nodes[j]) / (nodes[j + 1] - nodes[j])))


class KuruczGrid:
    """All ATLAS9 grid files of a folder, and models interpolated between them.

    Only the regular nodes are used: Teff multiples of 250 K, log g multiples of 0.5 dex
    (a few files hold extra models off those nodes).
    """

    def __init__(self, folder):
        folder = Path(folder)
        files = sorted(folder.glob("a[mp][0-9][0-9]k2.dat"))
        if not files:
            raise FileNotFoundError(f"no ATLAS9 grid file (a[mp]XXk2.dat) in {folder}")
        self.folder = folder
        self.models = {metallicity_of(f): read_grid_file(f) for f in files}
        self.metallicities = np.array(sorted(self.models))

    def _nodes(self, m_h):
        keys = [k for k in self.models[m_h] if k[0] % 250 == 0 and (2 * k[1]) % 1 == 0]
        return sorted({k[0] for k in keys}), sorted({k[1] for k in keys})

    def corners(self, teff, logg, m_h):
        """The (weight, model key) pairs whose sum is the model at (Teff K, log g, [M/H] dex)."""
        out = []
        for m, wm in _bracket(self.metallicities, m_h, "[M/H]"):
            teffs, loggs = self._nodes(m)
            for t, wt in _bracket(teffs, teff, "Teff"):
                for g, wg in _bracket(loggs, logg, "log g"):
                    if wm * wt * wg > 0:
                        out.append((wm * wt * wg, (m, t, g)))
        return out

    def covers(self, teff, logg, m_h):
        """True if every grid model needed to interpolate at this point exists."""
        try:
            return all(key[1:] in self.models[key[0]] for _, key in self.corners(teff, logg, m_h))
        except ValueError:
            return False

    def interpolate(self, teff, logg, m_h):
        """The model at (Teff K, log g dex, [M/H] dex): array (n_depths, 5) of ``COLUMNS``."""
        total = 0.0
        for weight, (m, t, g) in self.corners(teff, logg, m_h):
            model = self.models[m].get((t, g))
            if model is None:
                raise ValueError(f"no ATLAS9 model at Teff {t:.0f} K, log g {g:.1f}, [M/H] {m:+.1f} "
                                 f"in {self.folder}: cannot interpolate at ({teff}, {logg}, {m_h})")
            part = model.copy()
            part[:, _LOG] = np.log10(part[:, _LOG])
            total = total + weight * part
        total[:, _LOG] = 10.0 ** total[:, _LOG]
        return total
