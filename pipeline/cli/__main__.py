"""`python -m sepipe.cli`."""

import sys

from sepipe.cli.main import main

sys.exit(main())
