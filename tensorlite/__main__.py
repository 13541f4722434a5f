"""`python -m tensorlite ...`: the tensorlite command line (tensorlite/cli.py)."""
import sys

from .cli import main

sys.exit(main())
