"""``python -m ravecnn_utils.simulation --profile smoke --out data/sim/smoke``: write the simulated survey."""

import sys

from .simulate import main

sys.exit(main())
