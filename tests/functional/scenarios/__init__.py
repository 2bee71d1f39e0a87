"""Small suites that the functional tests run in subprocesses (not collected themselves:
their modules are not named ``test_*``)."""
