"""nose2 plugin: end ``-N`` workers with their parent, and run only this machine's shard.

nose2 reads ``unittest.cfg`` and ``nose2.cfg`` in the directory it starts
in (``setup.cfg`` only with ``-c setup.cfg``). With this in ``unittest.cfg``,
``nose2 -N 4`` works as typed::

    [unittest]
    plugins = nose2.plugins.mp
              test_framework.nose2_plugin

    [test-framework]
    always-on = True

nose2's ``mp`` workers end without running ``atexit``; the framework drops
each worker's databases as it ends or is terminated, plugin or not
(``test_framework.provision.worker_exit``). The plugin also drops them when
nose2 stops a worker.

With ``TEST_FRAMEWORK_SHARD=2/4`` only the second quarter of the test
classes is loaded (see ``test_framework.sharding``). With
``TEST_FRAMEWORK_SHUFFLE=<seed>`` or ``random`` the loaded suite runs in a
seeded order, classes kept together (see ``test_framework.shuffle``).

A worker whose nose2 process dies, even by ``kill -9``, ends itself and drops
its databases: it holds both ends of nose2's pipe, so it would otherwise wait
for its next test forever. On Linux the kernel sends it SIGTERM
(``PR_SET_PDEATHSIG``); elsewhere a thread checks the parent pid every
``PARENT_POLL`` seconds.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.util
import os
import signal
import sys
import threading
import time
import unittest

from nose2.events import Plugin

from test_framework.errors import ConfigurationError
from test_framework.provision import drop_databases_now
from test_framework.provision.worker_exit import EXIT_PRIORITY, drop_and_die
from test_framework.sharding import current_shard
from test_framework.shuffle import current_seed, ordered_suite

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_POLL = 0.5


class TestFrameworkPlugin(Plugin):
    configSection = "test-framework"
    commandLineSwitch = (None, "test-framework", "Drop worker databases; honour shards")

    def registerInSubprocess(self, event):
        event.pluginClasses.append(self.__class__)

    def startSubprocess(self, event):
        # A worker interrupted between tests never reaches stopSubprocess: on Ctrl-C
        # nose2's main process dies and multiprocessing terminates (SIGTERM) its workers.
        multiprocessing.util.Finalize(None, drop_databases_now, exitpriority=EXIT_PRIORITY)
        signal.signal(signal.SIGTERM, drop_and_die)
        _terminate_when_orphaned()

    def stopSubprocess(self, event):
        drop_databases_now()

    def startTestRun(self, event):
        try:
            shard = current_shard()
            seed = current_seed()
        except ConfigurationError as exc:
            sys.exit(f"error: {exc}")  # the message alone, not nose2's internal-error trace
        if shard is not None:
            event.suite = _only(event.suite, shard)
        if seed is not None:
            event.suite = ordered_suite(event.suite, seed)


def _terminate_when_orphaned() -> None:
    """Have SIGTERM sent to this worker when nose2's process dies (then ``drop_and_die``)."""
    parent = multiprocessing.parent_process()
    parent_pid = parent.pid if parent is not None else os.getppid()
    if not _parent_death_signal(signal.SIGTERM):
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True,
                         name="test_framework parent watcher").start()
    if os.getppid() != parent_pid:  # nose2 died before we asked to be told
        os.kill(os.getpid(), signal.SIGTERM)


def _parent_death_signal(signum: int) -> bool:
    """Ask Linux to send ``signum`` when the parent dies; False where that is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL)
    os.kill(os.getpid(), signal.SIGTERM)


def _only(suite: unittest.TestSuite, shard) -> unittest.TestSuite:
    kept = unittest.TestSuite()
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            kept.addTest(_only(test, shard))
        elif shard.includes(type(test)):
            kept.addTest(test)
    return kept
