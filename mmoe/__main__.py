"""Entry point for ``python -m mmoe``."""
import sys

from mmoe.cli import main

sys.exit(main())
