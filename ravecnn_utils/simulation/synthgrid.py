"""The grid of MOOG syntheses the emulator learns from: which labels, and computing them.

Design (``design_labels``): half the points are stars as the survey draws them (field and
cross-match stars of ``galaxy``: the label correlations where the survey lives), half fill a
box flat in every label, so that the emulator also knows spectra whose abundances do not follow
[M/H] (the decorrelated sample of ``catalogues.decorrelated_sample``). Every point lies where
the ATLAS9 grid can be interpolated.

``compute_grid`` runs the syntheses in worker processes, in chunks written atomically
(``chunk_XXXX.npz``): an interrupted run resumes where it stopped. A chunk written for other
labels is refused, and so is one written by another synthesis recipe (line list, damping,
atmospheres, MOOG build): every chunk stores the spectrum of ``REFERENCE_LABELS`` its run
computed, and a resumed run compares it with its own.
"""

from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..files import atomic_path
from ..labels import LABELS
from .galaxy import draw_crossmatch_stars, draw_field_stars

BOX = {
    "teff": (3600.0, 7500.0), "logg": (0.3, 5.0), "m_h": (-2.5, 0.6), "alpha_m": (-0.2, 0.5),
    "fe_h_minus_m_h": (-0.25, 0.25), "mg_fe": (-0.4, 0.6), "si_fe": (-0.4, 0.6), "al_fe": (-0.6, 0.6),
    "ni_fe": (-0.4, 0.4),
}
"""Ranges (K, dex) of the flat half of the design; [Fe/H] is drawn as [M/H] + an offset."""

DOMAIN = {"teff": (3500.0, 8000.0), "logg": (0.0, 5.0), "m_h": (-2.5, 0.6), "alpha_m": (-0.3, 0.6),
          "fe_h": (-2.8, 0.8), "mg_fe": (-0.6, 0.8), "si_fe": (-0.6, 0.8), "al_fe": (-0.8, 0.8),
          "ni_fe": (-0.6, 0.6)}
"""Label ranges (K, dex) of the grid, hence of the emulator: survey-like draws outside are redrawn."""


def domain_bounds():
    """``DOMAIN`` as two arrays (lower, upper) in ``labels.LABELS`` order."""
    return np.array([DOMAIN[name] for name in LABELS], float).T


def _box(n, rng):
    """``n`` label rows flat in ``BOX``."""
    draw = {name: rng.uniform(*bounds, n) for name, bounds in BOX.items()}
    draw["fe_h"] = draw["m_h"] + draw.pop("fe_h_minus_m_h")
    return np.column_stack([draw[name] for name in LABELS])


def _survey_like(n, rng):
    """Stars as the survey draws them: field stars and, a fifth as many, cross-match stars."""
    stars = [draw_field_stars(n, rng), draw_crossmatch_stars(n // 4, rng)]
    return np.concatenate([np.column_stack([np.asarray(t[name], float) for name in LABELS]) for t in stars])


def design_labels(n, grid, seed=2020, flat_fraction=0.5):
    """``n`` label rows (``labels.LABELS`` order) for the synthesis grid, all covered by ``grid``
    (a ``kurucz.KuruczGrid``), a fraction ``flat_fraction`` from ``BOX``, the rest survey-like."""
    rng = np.random.default_rng(seed)
    n_flat = int(round(n * flat_fraction))
    parts = []
    for draw, want in ((_box, n_flat), (_survey_like, n - n_flat)):
        got = np.empty((0, len(LABELS)))
        while len(got) < want:
            batch = draw(max(want, 64), rng)
            batch = batch[np.isfinite(batch).all(axis=1)]
            lo, hi = domain_bounds()
            ok = np.all((batch >= lo) & (batch <= hi), axis=1)
            ok[ok] = [grid.covers(*row[:3]) for row in batch[ok]]
            got = np.concatenate([got, batch[ok]])
        parts.append(got[:want])
    return np.concatenate(parts)


REFERENCE_LABELS = np.array([4800.0, 2.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
"""A giant (Teff K, log g, [M/H], [Fe/H], [α/M], [Si/Fe], [Al/Fe], [Mg/Fe], [Ni/Fe]) whose synthesis
fingerprints the recipe that made a chunk."""

RECIPE_TOLERANCE = 1e-5
"""Largest flux difference between two syntheses of ``REFERENCE_LABELS`` that counts as the same recipe."""

_SYNTH = None


def _init(moog, kurucz_folder, resolution):
    global _SYNTH
    from .kurucz import KuruczGrid
    from .moog import MoogSynthesis
    _SYNTH = MoogSynthesis(moog, KuruczGrid(kurucz_folder), resolution)


def _run(rows):
    return _SYNTH.flux(rows).astype(np.float32)


def check_recipe(path, reference):
    """Refuse a cached chunk whose stored ``REFERENCE_LABELS`` spectrum is not ``reference``."""
    with np.load(path) as saved:
        stored = saved["reference"] if "reference" in saved.files else None
    if stored is None or stored.shape != reference.shape or np.max(np.abs(stored - reference)) > RECIPE_TOLERANCE:
        raise ValueError(f"{path} was computed by another synthesis recipe (line list, damping, atmospheres or MOOG "
                         f"differ): remove {Path(path).parent} to compute the grid again")


def compute_grid(labels, out_dir, moog, kurucz_folder, resolution=7500.0, processes=2, chunk=100):
    """MOOG spectra of every row of ``labels`` into ``out_dir``; returns (labels, flux (n, n_pixels)).

    Chunks already on disk with the same labels and recipe are kept (a run resumes); a chunk computed
    for other labels, or by another recipe (``check_recipe``), raises ``ValueError`` naming it.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels, float)
    starts = list(range(0, len(labels), chunk))
    paths = [out_dir / f"chunk_{i // chunk:04d}.npz" for i in starts]
    for start, path in zip(starts, paths):
        if path.is_file():
            with np.load(path) as saved:
                if not np.array_equal(saved["labels"], labels[start:start + chunk]):
                    raise ValueError(f"{path} holds syntheses of other labels: remove {out_dir} or use another folder")
    _init(str(moog), str(kurucz_folder), resolution)  # a missing MOOG or grid fails here, not in a worker;
    reference = _run(REFERENCE_LABELS[None])[0]       # the forked workers inherit the synthesis
    todo = []
    for start, path in zip(starts, paths):
        if path.is_file():
            check_recipe(path, reference)
        else:
            todo.append((start, path))
    if todo:
        with get_context("fork").Pool(processes) as pool:
            results = pool.imap(_run, [labels[s:s + chunk] for s, _ in todo])
            for (start, path), flux in tqdm(zip(todo, results), total=len(todo), desc="MOOG syntheses",
                                            unit="chunk", postfix={"spectra per chunk": chunk}):
                with atomic_path(path) as tmp:
                    with open(tmp, "wb") as handle:
                        np.savez(handle, labels=labels[start:start + chunk], flux=flux, reference=reference)
    fluxes = []
    for path in paths:
        with np.load(path) as saved:
            fluxes.append(saved["flux"])
    return labels, np.concatenate(fluxes)
