"""Entry point for ``python -m recoseg_cli``."""

from recoseg_cli.cli import console_main

console_main()
