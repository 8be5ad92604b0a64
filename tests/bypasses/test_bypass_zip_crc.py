"""Bad CRC-32 on a torch zip member: torch ignores it, Python's zipfile refuses the member.

See README.md in this folder for the public source. Samples come from tests/corpus/ (bypass id 'zip-crc').
"""

from tests.corpus.checks import bypass_tests

test_real_loader_runs_it, test_scanner_blocks_it = bypass_tests("zip-crc")
