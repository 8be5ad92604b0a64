"""7z archives holding pickles (torch folders packed with 7z).

See README.md in this folder for the public source. Samples come from tests/corpus/ (bypass id '7z').
"""

from tests.corpus.checks import bypass_tests

test_real_loader_runs_it, test_scanner_blocks_it = bypass_tests("7z")
