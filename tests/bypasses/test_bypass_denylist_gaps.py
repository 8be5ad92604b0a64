"""Execution and file-write primitives missing from common denylists.

importlib, marshal, runpy, asyncio, code, timeit, profile, and dozens more.

See README.md in this folder for the public source. Samples come from tests/corpus/ (bypass id 'denylist-gaps').
"""

from tests.corpus.checks import bypass_tests

test_real_loader_runs_it, test_scanner_blocks_it = bypass_tests("denylist-gaps")
