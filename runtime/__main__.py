"""``python -m edgepipe.runtime predict|serve|info``: the runtime Docker target's entry point."""
import sys

from edgepipe.runtime.cli import main

sys.exit(main())
