"""Polyglots: a pickle prepended to a valid zip/torch file.

See README.md in this folder for the public source. Samples come from tests/corpus/ (bypass id 'polyglot').
"""

from tests.corpus.checks import bypass_tests

test_real_loader_runs_it, test_scanner_blocks_it = bypass_tests("polyglot")
