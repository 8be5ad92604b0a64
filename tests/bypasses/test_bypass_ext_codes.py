"""EXT1/EXT2/EXT4: globals named by copyreg extension codes instead of module/name strings.

See README.md in this folder for the public source. Samples come from tests/corpus/ (bypass id 'ext-codes').
"""

from tests.corpus.checks import bypass_tests

test_real_loader_runs_it, test_scanner_blocks_it = bypass_tests("ext-codes")
