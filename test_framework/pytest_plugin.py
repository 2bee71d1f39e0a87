"""pytest plugin (loaded automatically once installed): worker cleanup and shards.

Under pytest-xdist every worker provisions its own database (named with the
worker id, e.g. ``test_app_gw0_…``); this plugin drops it when the worker's
session ends. With ``TEST_FRAMEWORK_SHARD=2/4`` only this machine's test
classes are collected; combine it with xdist (``-n 4``) to use every core of
every machine. When the database server cannot be reached, or a setting is
unusable (a sync driver in the URL), the session stops after the first error
instead of failing every test the same way; that failure shows the message
first and the driver's innermost error, without the framework's frames.
"""

from __future__ import annotations

import pytest

from test_framework.errors import ConfigurationError, DatabaseUnavailableError
from test_framework.provision import drop_databases_now
from test_framework.sharding import current_shard
from test_framework.ssot.stop_run import STOPS_THE_RUN, summary


def pytest_collection_modifyitems(config, items):
    try:
        shard = current_shard()
    except ConfigurationError as exc:
        raise pytest.UsageError(str(exc)) from None
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
    """Stop the session at an error every test would repeat, as unittest and nose2 do."""
    outcome = yield
    if call.excinfo is None or not call.excinfo.errisinstance(STOPS_THE_RUN):
        return
    error = call.excinfo.value
    outcome.get_result().longrepr = summary(error)
    what = ("test database unavailable" if isinstance(error, DatabaseUnavailableError)
            else "test configuration error")
    item.session.shouldstop = f"{what}: {error}"


def pytest_unconfigure(config):
    drop_databases_now()
