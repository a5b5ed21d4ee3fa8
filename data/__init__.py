"""The built-in sample datasets (installed as the package ``mmoe.samples``; see README.md)."""
