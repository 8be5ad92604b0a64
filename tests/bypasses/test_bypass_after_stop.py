"""Payload in a later pickle after a benign one: loaders that read records until EOF run it.

See README.md in this folder for the public source. Samples come from tests/corpus/ (bypass id 'after-stop').
"""

from tests.corpus.checks import bypass_tests

test_real_loader_runs_it, test_scanner_blocks_it = bypass_tests("after-stop")
