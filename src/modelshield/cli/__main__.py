"""``python -m modelshield.cli``."""

from modelshield.cli.main import main

main()
