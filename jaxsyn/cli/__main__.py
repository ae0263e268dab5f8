"""`python -m jaxsyn.cli ...` runs the `jaxsyn` command."""

import sys

from jaxsyn.cli.app import main

sys.exit(main())
