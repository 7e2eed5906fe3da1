"""`python cli.py ...` from a checkout; the installed console script is `netbuilder`."""

import sys

from netbuilder.cli import main

sys.exit(main())
