"""`python -m shakedown` runs the CLI."""

from .cli import main

main()
