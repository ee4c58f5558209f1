"""The `tidegate` command line."""

from tidegate_dev.cli.main import main

__all__ = ["main"]
