"""``python -m sdeml ...``: the same command line as ``sdeml ...``."""

import sys

from sdeml.run import main

sys.exit(main())
