"""`python -m zemfyre_license`: the same as the `zemfyre-license` command."""

import sys

from zemfyre_license.cli import main

sys.exit(main())
