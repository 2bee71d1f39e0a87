"""Functional tests: real suites run in subprocesses, checked by exit status, counts, leftovers."""
