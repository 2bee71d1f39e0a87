"""pytest plugin (loaded automatically once installed): worker cleanup and shards.

Under pytest-xdist every worker provisions its own database (named with the
worker id, e.g. ``test_app_gw0_…``); this plugin drops it when the worker's
session ends. With ``TEST_FRAMEWORK_SHARD=2/4`` only this machine's test
classes are collected; combine it with xdist (``-n 4``) to use every core of
every machine. With ``TEST_FRAMEWORK_SHUFFLE=<seed>`` or ``random`` the
collected items run in a seeded order, each class's tests together (see
``test_framework.shuffle``). When the database server cannot be reached, or a setting is
unusable (a sync driver in the URL), the session stops after the first error
instead of failing every test the same way; that failure shows the message
first and the driver's innermost error, without the framework's frames.
The framework's test classes call ``setup_method``/``teardown_method``
themselves, once per test on the class's loop as under unittest and nose2, so
pytest's own per-test fixture for those hooks is left out of their tests: it
cost every test a fixture set-up and tear-down that did nothing.

pytest loads this plugin in every run, also of suites that never use the
framework, so only light modules are imported here (settings, errors); the
database code is imported by the hooks that need it, if ever.
"""

from __future__ import annotations

import sys

import pytest

from test_framework.errors import ConfigurationError, DatabaseUnavailableError, TestFrameworkError
from test_framework.sharding import current_shard
from test_framework.shuffle import current_seed, ordered


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """Pick a ``random`` seed here, once: xdist workers, started later, inherit it."""
    if not hasattr(config, "workerinput"):
        _seed(config)


def _seed(config) -> int | None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    try:
        return current_seed(announce=reporter.write_line) if reporter else current_seed()
    except ConfigurationError as exc:
        raise pytest.UsageError(str(exc)) from None


def _describe(item) -> tuple[str, str, str]:
    module = getattr(item, "module", None)
    test_class = getattr(item, "cls", None)
    return (module.__name__ if module else item.nodeid.partition("::")[0],
            test_class.__qualname__ if test_class else "", item.name)


def pytest_collection_modifyitems(config, items):
    seed = _seed(config)
    if seed is not None:
        items[:] = ordered(items, seed, _describe)
    try:
        shard = current_shard()
    except ConfigurationError as exc:
        raise pytest.UsageError(str(exc)) from None
    if shard is not None:
        _keep_shard(config, items, shard)
    _drop_xunit_fixture(items)


def _keep_shard(config, items, shard) -> None:
    keep, drop = [], []
    for item in items:
        test_class = getattr(item, "cls", None) or type(item)
        (keep if shard.includes(test_class) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _drop_xunit_fixture(items) -> None:
    """Leave pytest's ``setup_method`` fixture out of the framework's tests.

    pytest wraps the xunit hooks of every unittest class it collects in an
    autouse fixture named after the class (``_pytest/unittest.py``). The
    framework's asyncSetUp and asyncTearDown already call both hooks, so for
    its classes the fixture only added a fixture set-up, tear-down and hook
    calls to every test.
    """
    base = sys.modules.get("test_framework.ssot.base_test_case")
    if base is None:  # not imported: none of the collected tests is the framework's
        return
    for item in items:
        test_class = getattr(item, "cls", None)
        if test_class is None or not issubclass(test_class, base.SSotBaseTestCase):
            continue
        name = f"_unittest_setup_method_fixture_{test_class.__qualname__}"
        if name in item.fixturenames:
            item.fixturenames.remove(name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Stop the session at an error every test would repeat, as unittest and nose2 do."""
    outcome = yield
    if call.excinfo is None or not call.excinfo.errisinstance(TestFrameworkError):
        return  # only the framework's own errors stop the run: no need to import it
    from test_framework.ssot.stop_run import STOPS_THE_RUN, summary

    if not call.excinfo.errisinstance(STOPS_THE_RUN):
        return
    error = call.excinfo.value
    outcome.get_result().longrepr = summary(error)
    what = ("test database unavailable" if isinstance(error, DatabaseUnavailableError)
            else "test configuration error")
    item.session.shouldstop = f"{what}: {error}"


def pytest_unconfigure(config):
    provision = sys.modules.get("test_framework.provision")
    if provision is not None:  # not imported: this process made no database to drop
        provision.drop_databases_now()
