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

import multiprocessing.util
import os
import signal
import threading
import unittest

from nose2.events import Plugin

from test_framework.provision import drop_databases_now
from test_framework.sharding import current_shard


class TestFrameworkPlugin(Plugin):
    configSection = "test-framework"
    commandLineSwitch = (None, "test-framework", "Drop worker databases; honour shards")

    def registerInSubprocess(self, event):
        event.pluginClasses.append(self.__class__)

    def startSubprocess(self, event):
        # A worker interrupted between tests never reaches stopSubprocess: on Ctrl-C
        # nose2's main process dies and multiprocessing terminates (SIGTERM) its workers.
        multiprocessing.util.Finalize(None, drop_databases_now, exitpriority=100)
        signal.signal(signal.SIGTERM, _drop_and_exit)

    def stopSubprocess(self, event):
        drop_databases_now()

    def startTestRun(self, event):
        shard = current_shard()
        if shard is not None:
            event.suite = _only(event.suite, shard)


def _drop_and_exit(signum, frame):
    """Drop the worker's databases on a helper thread (the loop here may be mid-run)."""
    dropper = threading.Thread(target=drop_databases_now)
    dropper.start()
    dropper.join(timeout=30)
    os._exit(128 + signum)


def _only(suite: unittest.TestSuite, shard) -> unittest.TestSuite:
    kept = unittest.TestSuite()
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            kept.addTest(_only(test, shard))
        elif shard.includes(type(test)):
            kept.addTest(test)
    return kept
