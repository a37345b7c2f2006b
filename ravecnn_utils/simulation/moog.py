"""LTE synthesis of the RAVE region with MOOG (Sneden 1973; version NOV2019, ``MOOGSILENT``).

MOOG itself is not part of this repository: ``make emulator`` runs a ``MOOGSILENT`` binary the
user built (``MOOG=``; see ``data/emulator/README.md``). This module writes its inputs — an
ATLAS9 model interpolated by ``kurucz``, the committed VALD line list, a batch file — runs it in a
scratch folder and reads the raw synthetic spectrum back.

What the synthesis does and does not do:

* the nine labels set the abundances: [M/H] scales every metal (and picks the atmosphere);
  O, Ne, S, Ar, Ca and Ti follow [M/H] + [α/M]; Fe is [Fe/H]; Mg, Si, Al, Ni are
  [Fe/H] + [X/Fe] — the forward model's mapping (``forward.abundance_matrix``);
* the atmospheres are solar-scaled: [α/M] changes the line opacity, not the atmosphere's
  structure;
* the Ca II triplet is a "strong line" (its opacity computed at every wavelength, so its
  pressure-broadened wings are whole); damping constants of Barklem et al. (MOOG's
  ``Barklem.dat``, which holds the triplet and most Fe I lines here), Unsöld's approximation
  for the rest. MOOG by default replaces the triplet's constants by old laboratory formulae
  (its ``trudamp``, which its own source calls "old and not easily defended"); the batch file
  switches that off (``trudamp 1``), so the triplet, too, has Barklem's van der Waals
  broadening, about 1.6 times the old formulae's near 5,000 K. With it, a direct MOOG fit of the
  real giant HD 161096 (``data/real_cat_spectra``) gives log g 2.07 (literature 2.33); with the
  old constants it lay near 1.5 (the emulator made from them fitted 1.10);
* the Paschen lines are synthesised as metal lines: MOOG has no Stark broadening for hydrogen,
  so their wings are too narrow in stars hotter than about 6,500 K;
* no molecular lines (the line list has none; CN matters in cool giants), LTE cores (the real
  Ca II cores are formed in the chromosphere and are shallower).
"""

import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ..labels import LABELS
from .forward import model_wavelengths
from .linelist import SOLAR_LOG_EPS, read_linelist

ATOMIC_NUMBER = {"H": 1, "O": 8, "Ne": 10, "Mg": 12, "Al": 13, "Si": 14, "S": 16, "Ar": 18,
                 "Ca": 20, "Ti": 22, "Cr": 24, "Mn": 25, "Fe": 26, "Co": 27, "Ni": 28, "Ce": 58}

SOLAR = SOLAR_LOG_EPS | {"O": 8.69, "Ne": 7.93, "S": 7.12, "Ar": 6.40}
"""Solar log ε (Asplund et al. 2009) of every element whose abundance the labels set."""

ALPHA_ELEMENTS = ("O", "Ne", "S", "Ar", "Ca", "Ti")
"""Elements at [M/H] + [α/M] (Mg and Si have labels of their own)."""

SYNTHESIS_RANGE = (8392.0, 8808.0)
"""Wavelengths (Å) synthesised: the model grid plus a margin of 6σ of the instrumental profile
(MOOG refuses to start more than 10 Å blueward of the line list's first line, 8401 Å)."""

SYNTHESIS_STEP = 0.02
"""Step (Å) of MOOG's synthesis."""

OPACITY_REACH = 2.0
"""How far (Å) from its centre each weak line's opacity is computed (MOOG's ``delta``)."""


def microturbulence(teff, logg):
    """Microturbulence ξ (km/s) from log g: 2.478 − 0.325 log g (Holtzman et al. 2015, APOGEE
    DR12 giants), kept within 0.8–2.5 km/s (dwarfs ≈ 1 km/s)."""
    return float(np.clip(2.478 - 0.325 * logg, 0.8, 2.5))


def abundances(labels):
    """{element: log ε} that the nine labels (``labels.LABELS`` order: Teff, log g, [M/H], [Fe/H],
    [α/M], [Si/Fe], [Al/Fe], [Mg/Fe], [Ni/Fe]) set; every other metal
    follows [M/H]."""
    lab = dict(zip(LABELS, labels))
    out = {el: SOLAR[el] + lab["m_h"] + lab["alpha_m"] for el in ALPHA_ELEMENTS}
    out["Fe"] = SOLAR["Fe"] + lab["fe_h"]
    out |= {el: SOLAR[el] + lab["fe_h"] + lab[f"{el.lower()}_fe"] for el in ("Mg", "Si", "Al", "Ni")}
    return out


def model_text(atmosphere, labels):
    """A MOOG model file (KURUCZ type) for ``atmosphere`` (``kurucz.COLUMNS`` rows) and labels."""
    teff, logg, m_h = labels[:3]
    xi = microturbulence(teff, logg)
    ab = abundances(labels)
    rows = ["KURUCZ", f"TEFF={teff:.1f} LOGG={logg:.3f} M/H={m_h:+.3f} (ravecnn)", f"NTAU        {len(atmosphere)}"]
    rows += [" %.8E %9.1f %.4E %.4E %.4E" % tuple(r) for r in atmosphere]
    rows += [f"    {xi:.3f}E+05", f"NATOMS     {len(ab)}   {m_h:.3f}"]
    rows += [f"      {ATOMIC_NUMBER[el]:.1f}    {v:.3f}" for el, v in sorted(ab.items(), key=lambda kv: ATOMIC_NUMBER[kv[0]])]
    rows.append("NMOL        0")
    return "\n".join(rows) + "\n"


def linelist_texts(lines=None):
    """MOOG line lists (weak, strong) from ``linelist.read_linelist``: Ca II is the strong list."""
    lines = read_linelist() if lines is None else lines
    weak, strong = ["ravecnn: VALD lines of the RAVE region (data/linelist)"], []
    for row in lines:
        code = ATOMIC_NUMBER[row["element"]] + (int(row["ion_stage"]) - 1) / 10
        text = "%10.3f%10.1f%10.3f%10.3f" % (row["wavelength"], code, row["chi"], row["loggf"])
        (strong if row["species"] == "Ca II" else weak).append(text)
    return "\n".join(weak) + "\n", "\n".join(strong) + "\n"


BATCH = """synth
standard_out  'out1'
summary_out   'out2'
model_in      'model.mod'
lines_in      'lines.in'
stronglines_in 'strong.in'
strong        1
atmosphere    0
lines         0
molecules     0
damping       1
trudamp       1
terminal      'null'
flux/int      0
plot          0
synlimits
  {start:.2f} {stop:.2f} {step:.3f} {reach:.2f}
"""


def read_raw_spectrum(path):
    """MOOG's raw synthesis (``summary_out``): wavelengths (Å) and normalised flux."""
    lines = Path(path).read_text().splitlines()
    heads = [i for i, line in enumerate(lines) if line.startswith("MODEL:")]
    if not heads:
        raise ValueError(f"{path}: no synthesis in MOOG's output (no MODEL: line)")
    start, stop, step = (float(x) for x in lines[heads[0] + 1].split()[:3])
    depth = np.array(" ".join(lines[heads[0] + 2:]).split(), float)
    n = int(round((stop - start) / step)) + 1
    if depth.size < n - 1:
        raise ValueError(f"{path}: MOOG wrote {depth.size} of {n} flux points")
    return start + step * np.arange(depth.size), 1.0 - depth


class MoogSynthesis:
    """Synthetic spectra from labels with a user-built ``MOOGSILENT`` and ATLAS9 grids.

    Parameters
    ----------
    moog : path
        The ``MOOGSILENT`` executable.
    grid : kurucz.KuruczGrid
    resolution : float
        Resolving power of the Gaussian instrumental profile (FWHM = 8600 Å / R, constant in Å).
    """

    def __init__(self, moog, grid, resolution=7500.0, lines=None):
        self.moog = Path(moog)
        if not (self.moog.is_file() and os.access(self.moog, os.X_OK)):
            raise FileNotFoundError(f"MOOG executable not found or not executable: {self.moog}")
        self.grid = grid
        self.resolution = float(resolution)
        self.weak, self.strong = linelist_texts(lines)
        self.wavelengths = model_wavelengths()

    def _prepare(self, workdir):
        """The inputs shared by every star: line lists and batch file, written once into ``workdir``."""
        workdir = Path(workdir)
        (workdir / "lines.in").write_text(self.weak)
        (workdir / "strong.in").write_text(self.strong)
        (workdir / "batch.par").write_text(BATCH.format(start=SYNTHESIS_RANGE[0], stop=SYNTHESIS_RANGE[1],
                                                        step=SYNTHESIS_STEP, reach=OPACITY_REACH))

    def _raw(self, labels, workdir):
        """MOOG's spectrum at ``SYNTHESIS_STEP`` for one star (nine labels), in a ``_prepare``d ``workdir``."""
        workdir = Path(workdir)
        (workdir / "model.mod").write_text(model_text(self.grid.interpolate(*labels[:3]), labels))
        for name in ("out1", "out2"):
            (workdir / name).unlink(missing_ok=True)
        run = subprocess.run([str(self.moog)], cwd=workdir, input="\n", capture_output=True, text=True, timeout=120)
        if run.returncode != 0 or not (workdir / "out2").is_file() or "QUIT" in run.stdout:
            tail = " ".join((run.stderr + run.stdout).split())[-400:]
            raise RuntimeError(f"MOOG failed for labels {list(np.round(labels, 3))} in {workdir}: {tail}")
        return read_raw_spectrum(workdir / "out2")

    def flux(self, labels):
        """Continuum-normalised flux on ``self.wavelengths`` (Å), shape (n_stars, n_pixels)."""
        sigma = 8600.0 / self.resolution / (2 * np.sqrt(2 * np.log(2))) / SYNTHESIS_STEP
        out = []
        with tempfile.TemporaryDirectory(prefix="moog-") as workdir:
            self._prepare(workdir)
            for row in np.atleast_2d(np.asarray(labels, float)):
                wave, flux = self._raw(row, workdir)
                out.append(np.interp(self.wavelengths, wave, gaussian_filter1d(flux, sigma, mode="nearest")))
        return np.array(out)
