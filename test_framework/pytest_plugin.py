"""pytest plugin (loaded automatically once installed): worker cleanup and shards.

Under pytest-xdist every worker provisions its own database (named with the
worker id, e.g. ``test_app_gw0_…``); this plugin drops it when the worker's
session ends. With ``TEST_FRAMEWORK_SHARD=2/4`` only this machine's test
classes are collected; combine it with xdist (``-n 4``) to use every core of
every machine.
"""

from __future__ import annotations

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


def pytest_unconfigure(config):
    drop_databases_now()
