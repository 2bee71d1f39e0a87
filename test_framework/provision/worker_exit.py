"""A forked worker drops its test databases when it ends, also when it is terminated.

multiprocessing's fork start method (nose2 ``-N``, ``Pool`` and
``ProcessPoolExecutor`` on Linux) ends a worker with ``os._exit()``, so
``atexit`` never runs there: each worker's database outlived it until the
next run reaped it. ``watch_forked_workers()`` (called when a framework test
class is defined, so in the parent before it forks) has multiprocessing arm
two things in every worker it starts:

* a ``multiprocessing.util.Finalize``, which the worker runs as it returns
  from its target: the normal end. (Finalizers inherited from the parent are
  cleared at fork, hence the after-fork hook.)
* a SIGTERM handler, for ``Process.terminate()``: on Ctrl-C nose2's parent
  terminates its workers while they drop their databases. The handler drops
  them on a helper thread (the main thread may be inside the event loop),
  then the worker dies of SIGTERM as it would have. A worker already
  unwinding from that Ctrl-C is dropping them itself: it gets
  ``DROP_BOUND`` seconds to finish first.

A SIGTERM handler the application installed is left alone. Workers started
with ``spawn`` exit normally and run ``atexit``; they need none of this.
"""

from __future__ import annotations

import multiprocessing.util
import os
import signal
import sys
import threading

from test_framework.provision import drop_databases_now

DROP_BOUND = 30  # seconds a terminated worker may spend dropping its databases
EXIT_PRIORITY = 100  # before multiprocessing's own finalizers (queues, managers)


class _Anchor:
    """What multiprocessing's after-fork registry holds (weakly) for us."""


_anchor: _Anchor | None = None


def watch_forked_workers() -> None:
    """Arm every worker multiprocessing forks from now on; idempotent."""
    global _anchor
    if _anchor is None:
        _anchor = _Anchor()
        multiprocessing.util.register_after_fork(_anchor, _arm_worker)


def _arm_worker(_: _Anchor) -> None:
    multiprocessing.util.Finalize(None, drop_databases_now, exitpriority=EXIT_PRIORITY)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, drop_and_die)


def drop_and_die(signum: int, frame) -> None:
    """Drop this process's databases on a helper thread, then die of ``signum``.

    On Ctrl-C the SIGTERM reaches a worker that is already unwinding from the
    same Ctrl-C and dropping its databases on the main thread; dying then cut
    that drop short. That worker finishes on its own, within ``DROP_BOUND``.
    """
    signal.signal(signum, signal.SIG_IGN)  # one drop at a time: a repeat changes nothing
    if isinstance(sys.exc_info()[1], KeyboardInterrupt):
        deadline = threading.Timer(DROP_BOUND, os._exit, (128 + signum,))
        deadline.daemon = True
        deadline.start()
        return
    dropper = threading.Thread(target=drop_databases_now, name="test_framework drop")
    dropper.start()
    dropper.join(timeout=DROP_BOUND)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
