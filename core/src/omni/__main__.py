"""`python -m omni`: the `omni` command (the launcher starts each training process this way)."""

import sys

from omni.cli.main import main

sys.exit(main())
