"""ravecnn_utils: the thin, tested library behind the ravecnn notebooks.

One module per concern:

* the simulated survey: ``labels`` (names, units), ``linelist`` (lines of the RAVE region),
  ``forward`` (spectra from labels, their Jacobian and Fisher information), ``galaxy`` (the
  mock Milky Way), ``simulate`` (the survey in the real releases' file formats), ``realism``
  (simulated against real spectra);
* the data: ``io`` (RAVE DR6 and APOGEE readers and writers, the spectra cube), ``survey``
  (a survey folder as the notebooks see it), ``crossmatch`` (match, cuts, split),
  ``trainingset`` (the training-set file), ``photometry`` (the second input);
* the network: ``model`` (architectures, masked loss), ``train`` (scaling, ensembles,
  calibration, saving), ``gradients`` (∂label/∂flux, population means, the lines behind them);
* the peers: ``baselines`` (mean, ridge, PCA + ridge, kNN, The Cannon); ``metrics``; ``plots``;
  ``notebooks`` (the papermill runner).
"""

__version__ = "0.1.0"
