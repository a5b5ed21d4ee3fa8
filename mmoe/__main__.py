"""Entry point for ``python -m mmoe``."""
from mmoe.cli import run

run()
