"""The embedded default survey: a mock Milky Way observed with RAVE-like spectra and catalogued
in the real releases' file formats.

* ``galaxy`` — the mock Milky Way: populations, labels, distances, sky, photometry;
* ``linelist`` — the lines of the RAVE region (VALD) with their atomic data;
* ``emulator`` — the survey's model of spectra: flux and exact Jacobian from nine labels, a
  network trained on MOOG syntheses (weights in ``data/emulator/``);
* ``kurucz``, ``moog``, ``synthgrid``, ``emulator_build`` — how the emulator is made (``make
  emulator``): ATLAS9 atmospheres, MOOG's inputs and output, the grid of syntheses, the training;
* ``forward`` — the model grid, Doppler resampling, and the hand-built line model the emulator
  replaced (kept as the comparison of ``benchmarks/realism.py``);
* ``spectra`` — one chunk of observations: flux on each file's pixels, noise, Fisher matrices;
* ``catalogues`` — the RAVE catalogue, APOGEE allStar, benchmark and truth tables;
* ``simulate`` — the whole survey on disk (``python -m ravecnn_utils.simulation``);
* ``realism`` — the model of spectra against real spectra of known stars.

The analysis (the package above) never imports this package, except where it compares with the
forward model on purpose (the allow-list in ``tests/test_layout.py``).
"""
