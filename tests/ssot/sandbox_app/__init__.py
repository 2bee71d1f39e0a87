"""A tiny application that knows nothing of the framework, for ``tests/ssot/test_sandbox.py``.

``db`` holds the module-level engine and sessionmaker, made at import from the
same URL the tests are configured with; ``service`` imports them by value, as
application code does, and writes with each.
"""
