"""`python -m musiclib ...`: the same command line as `musiclib ...`."""
import sys

from musiclib.cli import main

sys.exit(main())
