"""Loader re-entry: the pickle calls pickle/torch/joblib/numpy/dill loaders on embedded malicious bytes.

See README.md in this folder for the public source. Samples come from tests/corpus/ (bypass id 'reentry').
"""

from tests.corpus.checks import bypass_tests

test_real_loader_runs_it, test_scanner_blocks_it = bypass_tests("reentry")
