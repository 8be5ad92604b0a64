"""Memo confusion: a memo slot is overwritten,
so a scanner that remembers the first value it saw resolves the wrong global.

See README.md in this folder for the public source. Samples come from tests/corpus/ (bypass id 'memo-confusion').
"""

from tests.corpus.checks import bypass_tests

test_real_loader_runs_it, test_scanner_blocks_it = bypass_tests("memo-confusion")
