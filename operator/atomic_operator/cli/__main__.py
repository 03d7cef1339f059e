"""`python -m atomic_operator.cli`: atomicctl without the console script."""

import sys

from atomic_operator.cli import main

sys.exit(main())
