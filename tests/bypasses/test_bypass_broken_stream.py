"""nullifAI-style broken streams: the payload runs, then the stream breaks; scanners that bail on parse errors miss it.

See README.md in this folder for the public source. Samples come from tests/corpus/ (bypass id 'broken-stream').
"""

from tests.corpus.checks import bypass_tests

test_real_loader_runs_it, test_scanner_blocks_it = bypass_tests("broken-stream")
