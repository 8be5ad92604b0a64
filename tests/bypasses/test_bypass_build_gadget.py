"""BUILD gadgets: BUILD stores __setstate__=os.system on an instance or class,
a second BUILD calls it; no REDUCE anywhere.

See README.md in this folder for the public source. Samples come from tests/corpus/ (bypass id 'build-gadget').
"""

from tests.corpus.checks import bypass_tests

test_real_loader_runs_it, test_scanner_blocks_it = bypass_tests("build-gadget")
