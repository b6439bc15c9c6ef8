"""``python -m edgepipe`` is the ``edgepipe`` command."""
import sys

from edgepipe.pipeline.cli import main

sys.exit(main())
