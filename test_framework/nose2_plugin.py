"""nose2 plugin: drop each worker's test databases, and run only this machine's shard.

nose2's ``mp`` plugin runs tests in worker processes that end without
running ``atexit`` handlers, so a worker's databases would outlive it. This
plugin drops them when the worker stops. Enable it in ``setup.cfg`` and run
``nose2 -c setup.cfg``::

    [unittest]
    plugins = nose2.plugins.mp
              test_framework.nose2_plugin

    [test-framework]
    always-on = True

With ``TEST_FRAMEWORK_SHARD=2/4`` only the second quarter of the test
classes is loaded (see ``test_framework.sharding``).
"""

from __future__ import annotations

import unittest

from nose2.events import Plugin

from test_framework.provision import drop_databases_now
from test_framework.sharding import current_shard


class TestFrameworkPlugin(Plugin):
    configSection = "test-framework"
    commandLineSwitch = (None, "test-framework", "Drop worker databases; honour shards")

    def registerInSubprocess(self, event):
        event.pluginClasses.append(self.__class__)

    def stopSubprocess(self, event):
        drop_databases_now()

    def startTestRun(self, event):
        shard = current_shard()
        if shard is not None:
            event.suite = _only(event.suite, shard)


def _only(suite: unittest.TestSuite, shard) -> unittest.TestSuite:
    kept = unittest.TestSuite()
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            kept.addTest(_only(test, shard))
        elif shard.includes(type(test)):
            kept.addTest(test)
    return kept
