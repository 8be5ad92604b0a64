"""``python -m modelshield``."""

from modelshield.cli.main import main

main()
