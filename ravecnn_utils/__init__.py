"""ravecnn_utils: the thin, tested library behind the ravecnn notebooks.

Three areas, one concern per module.

**The analysis** (this folder), in the order of the book:

* the surveys' formats, one module each: ``rave`` (RAVE DR6 spectrum files, catalogue tables,
  pipeline columns; ``plainfits``, its fast reader of plain FITS images), ``apogee`` (allStar DR16/DR17: label columns, flag bits, reader),
  ``survey`` (a survey folder: its file names, manifest and truth; where the notebooks' data
  come from), ``cube`` (the common wavelength grid, resampling, the spectra cube; ``cubefiles``, the
  spectrum files it is made from, listed once and kept on disk a chunk at a time), ``files``
  (atomic writing, table values as plain numpy), ``fitsbytes`` (FITS files assembled from headers
  astropy wrote once), ``fitstable`` (FITS binary tables written and read by blocks of rows);
* the training data: ``crossmatch`` (match, quality cuts), ``splits`` (training, validation,
  test), ``trainingset`` (the training-set file), ``photometry`` (absolute magnitudes, the second input);
* the network: ``labels`` (names, units, the core four), ``model`` (architectures, the book's
  networks, masked loss), ``inputs`` (the input contract), ``scaling`` (min–max scaling of
  labels and photometry), ``ensemble`` (the saved artefact: scalers, calibration, training
  range, its file), ``train`` (seeded fits, ensembles, a network end to end), ``augment`` (what
  the training sees beyond the set as written: decorrelating sample weights, per-epoch noise),
  ``inference`` and ``fastcnn`` (fast prediction engines), ``gradients`` (∂label/∂flux),
  ``novelty`` (is a spectrum one the training survey could have produced? ``ood_score``);
* the judgement: ``metrics``, ``crlb`` (Fisher information, Cramér–Rao bound), ``baselines``
  (the peers: ``base``, ``regression``, ``cannon``), ``validation`` (notebook 06's tables),
  ``prior`` (the decorrelated sample: does a method read the label or the prior?),
  ``discs`` (the thin/thick boundary), ``predict`` (the whole survey into a catalogue),
  ``costs`` (how each stage's time and memory grow with the survey: ``benchmarks/scale.py``'s
  ``scale.json``), ``plots`` (shared figures, colour maps per meaning, the sky map), ``plots_model``
  (a network drawn from its Keras graph), ``plots_validation`` (notebook 06's 1:1 and Cramér–Rao
  figures), ``tables`` (tables shown whole and formatted); ``paths`` (the
  committed data files).

**simulation/** — the embedded default survey: ``galaxy``, ``linelist``, ``emulator`` (spectra
from labels: MOOG syntheses emulated), ``kurucz``, ``moog``, ``synthgrid`` and ``emulator_build``
(making the emulator), ``forward``, ``spectra``, ``catalogues``, ``simulate`` (``python -m
ravecnn_utils.simulation``), ``realism``. The analysis
imports it only where it compares with the forward model on purpose (``tests/test_layout.py``).

**book/** — the book's tooling: ``notebooks`` (the papermill runner, ``python -m
ravecnn_utils.book``), ``parameters`` (each notebook's parameters checked where they enter),
``pages`` (generated pages, link check), ``checks`` (what a built page must not show),
``citations`` (the author–year citation styles, a Sphinx extension) and ``glued`` (numbers
computed in the run, glued into the notebooks' prose; what prose may type).
"""

__version__ = "0.1.0"
