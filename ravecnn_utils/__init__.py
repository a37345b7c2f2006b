"""ravecnn_utils: the thin, tested library behind the ravecnn notebooks.

One module per concern: ``labels`` (label names and units), ``linelist`` (the
atomic and hydrogen lines of the RAVE region), ``forward`` (the forward model of
RAVE-like spectra and its Jacobian), ``galaxy`` (the mock Milky Way), ``simulate``
(the simulated survey written in the real releases' file formats), ``io``
(readers and writers), ``realism`` (simulated against real spectra), ``plots``
and ``notebooks`` (the papermill runner).
"""

__version__ = "0.1.0"
