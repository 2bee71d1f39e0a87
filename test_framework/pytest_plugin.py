"""pytest plugin (loaded automatically once installed): worker cleanup and shards.

Under pytest-xdist every worker provisions its own database (named with the
worker id, e.g. ``test_app_gw0_…``); this plugin drops it when the worker's
session ends. With ``TEST_FRAMEWORK_SHARD=2/4`` only this machine's test
classes are collected; combine it with xdist (``-n 4``) to use every core of
every machine. When the database server cannot be reached the session stops
after the first error instead of failing every test the same way.
"""

from __future__ import annotations

import pytest

from test_framework.errors import DatabaseUnavailableError
from test_framework.provision import drop_databases_now
from test_framework.sharding import current_shard


def pytest_collection_modifyitems(config, items):
    shard = current_shard()
    if shard is None:
        return
    keep, drop = [], []
    for item in items:
        test_class = getattr(item, "cls", None) or type(item)
        (keep if shard.includes(test_class) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Stop the session when the database is unreachable, as unittest and nose2 do."""
    yield
    if call.excinfo is not None and call.excinfo.errisinstance(DatabaseUnavailableError):
        item.session.shouldstop = f"test database unavailable: {call.excinfo.value}"


def pytest_unconfigure(config):
    drop_databases_now()
