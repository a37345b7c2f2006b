"""The embedded default survey: a mock Milky Way observed with RAVE-like spectra and catalogued
in the real releases' file formats.

* ``galaxy`` — the mock Milky Way: populations, labels, distances, sky, photometry;
* ``linelist`` — the lines of the RAVE region (VALD) with their atomic data;
* ``forward`` — continuum-normalised spectra from nine labels, and their Jacobian;
* ``spectra`` — one chunk of observations: flux on each file's pixels, noise, Fisher matrices;
* ``catalogues`` — the RAVE catalogue, APOGEE allStar, benchmark and truth tables;
* ``simulate`` — the whole survey on disk (``python -m ravecnn_utils.simulation``);
* ``realism`` — the forward model against real spectra of known stars.

The analysis (the package above) never imports this package, except where it compares with the
forward model on purpose (the allow-list in ``tests/test_layout.py``).
"""
