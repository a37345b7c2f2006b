"""``python -m ravecnn_utils.book --profile smoke --out book/executed``: execute the notebooks."""

import sys

from .notebooks import main

sys.exit(main())
