"""Encryption flag bit set on an unencrypted torch zip member.

See README.md in this folder for the public source. Samples come from tests/corpus/ (bypass id 'zip-flag').
"""

from tests.corpus.checks import bypass_tests

test_real_loader_runs_it, test_scanner_blocks_it = bypass_tests("zip-flag")
