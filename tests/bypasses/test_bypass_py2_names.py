"""Python 2 module names (__builtin__, commands, cPickle, copy_reg) mapped to dangerous modules by fix_imports.

See README.md in this folder for the public source. Samples come from tests/corpus/ (bypass id 'py2-names').
"""

from tests.corpus.checks import bypass_tests

test_real_loader_runs_it, test_scanner_blocks_it = bypass_tests("py2-names")
