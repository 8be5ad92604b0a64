"""Dotted global names: protocol >= 4 resolves 'subprocess' + 'os.system' attribute by attribute.

See README.md in this folder for the public source. Samples come from tests/corpus/ (bypass id 'dotted-names').
"""

from tests.corpus.checks import bypass_tests

test_real_loader_runs_it, test_scanner_blocks_it = bypass_tests("dotted-names")
