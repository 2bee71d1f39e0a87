"""One event loop per process, shared by every test class.

The stdlib's ``IsolatedAsyncioTestCase`` builds a new debug-mode loop for
every test. Engines and connections belong to the loop that made them, so
that would mean a new connection per test; a loop per class still meant a
connect (and the dialect's first queries) per class, which a suite of small
classes paid on every class. Here the process has one ``ClassRunner``: its
loop carries the shared engines (``ssot/shared_engines.py``) from class to
class and is closed when the process ends (``close_shared_runner``, called
before the test databases are dropped). A forked worker makes its own.
Debug mode follows ``PYTHONASYNCIODEBUG`` / ``-X dev`` or the ``asyncio_debug``
setting, and is off otherwise.

CPython private names are used in this module only: ``_setupAsyncioRunner``,
``_tearDownAsyncioRunner`` and ``_asyncioRunner`` of
``unittest.IsolatedAsyncioTestCase`` (3.11 to 3.13).
``tests/ssot/test_class_loop.py`` checks they still behave on each Python.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import threading
import socket
import sys
import warnings
import weakref

import greenback
import outcome

from test_framework.config import project_settings
from test_framework.errors import is_shown_alone
from test_framework.interrupts import interrupt_running_statements
from test_framework.log import get_logger
from test_framework.provision import release_before_dropping

logger = get_logger(__name__)
TASK_GRACE = 1.0  # seconds a task the test started may run on after the test's body


class ClassRunner:
    """The part of ``asyncio.Runner`` that ``IsolatedAsyncioTestCase`` uses, made cheap.

    ``asyncio.Runner.run`` installs and removes a SIGINT handler on every call,
    four calls per test; that alone cost about 0.1 ms a test. Here the loop is
    made once per process and ``run`` only schedules the coroutine as a task
    (and points the signal wakeup at the loop: ``SignalWakeup``).
    Ctrl-C raises ``KeyboardInterrupt`` out of ``run``, as in plain asyncio, after
    stopping the statements drivers run on worker threads (``test_framework.interrupts``).
    """

    def __init__(self, *, debug: bool | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self.pid = os.getpid()
        self.closing: list = []  # coroutine functions run on the loop before it closes
        if debug is not None:
            self._loop.set_debug(debug)
        asyncio.set_event_loop(self._loop)
        self._signal_wakeup = SignalWakeup(self._loop)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    @property
    def signals_wake_loop(self) -> SignalWakeup:
        """Enter around a whole test, so its loop passes need not each point the fd."""
        return self._signal_wakeup

    def run(self, coroutine, *, context=None):
        """Run ``coroutine`` to completion as a task on the shared loop."""
        if asyncio._get_running_loop() is not None:
            raise RuntimeError("Runner.run() cannot be called from a running event loop")
        task = self._loop.create_task(coroutine, context=context)
        try:
            with self._signal_wakeup:
                return self._loop.run_until_complete(task)
        except KeyboardInterrupt:  # stop statements on driver threads, or exit waits for them
            interrupt_running_statements()
            task.add_done_callback(_forget_outcome)
            raise
        except Exception as exc:
            if is_shown_alone(exc):
                raise exc.with_traceback(None)
            exc.__traceback__ = _without_portal_frames(exc.__traceback__)
            raise

    @property
    def with_portal(self) -> bool:
        """Do new tasks get a greenback portal, so sync code in them may await?

        On while a test may still set its database up on first use
        (``ssot/lazy_database.py``): its own coroutines and the tasks it starts
        then run with a portal. A task factory the test installed is left alone.
        """
        return self._loop.get_task_factory() is _task_with_portal

    @with_portal.setter
    def with_portal(self, on: bool) -> None:
        factory = self._loop.get_task_factory()
        if on and factory is None:
            self._loop.set_task_factory(_task_with_portal)
        elif not on and factory is _task_with_portal:
            self._loop.set_task_factory(None)

    def close(self) -> None:
        """Cancel what is left, finish async generators and the executor, close the loop."""
        loop = self._loop
        if loop.is_closed():
            return
        try:
            leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in leftovers:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            try:
                loop.run_until_complete(loop.shutdown_default_executor())
            except RuntimeError:  # at exit, 3.12+ starts no thread: shut it down from here
                executor = getattr(loop, "_default_executor", None)  # CPython's, private
                if executor is not None:
                    executor.shutdown(wait=True)
        finally:
            asyncio.set_event_loop(None)
            self._signal_wakeup.close()
            loop.close()


class SignalWakeup:
    """Wake the loop as soon as a signal lands, even one that lands as it goes to sleep.

    Python runs the SIGINT handler (``KeyboardInterrupt``) only when the main
    thread runs Python code. A Ctrl-C that landed after the loop's last check
    but before its ``epoll_wait`` went unnoticed until something else woke the
    loop: under load, an endless SQLite query ran on until its statement
    timeout (60 s). CPython's C handler writes to the wakeup fd at once, from
    any thread; the loop watches the other end, so its sleep ends and the
    handler runs. The fd is the process's: set on the main thread for a whole
    test (``ClassRunner.signals_wake_loop``) or for one ``run``, then given
    back (or left to one set meanwhile, such as by ``loop.add_signal_handler``).
    A signal that lands between the test's loop passes leaves a byte, read at
    the next pass. Entered again inside, it does nothing: pointing the fd costs
    two system calls, and a test makes three or more passes.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._fd = self._writer.fileno()
        self._previous: int | None = None
        self._depth = 0  # how many ``with`` blocks are in: only the outermost sets the fd
        loop.add_reader(self._reader.fileno(), self._drain)

    def __enter__(self) -> None:
        self._depth += 1
        if self._depth > 1:  # a loop pass inside a test that already points it here
            return
        try:
            self._previous = signal.set_wakeup_fd(self._fd, warn_on_full_buffer=False)
        except ValueError:  # not the main thread, which alone runs signal handlers
            self._previous = None

    def __exit__(self, *exc_info) -> None:
        self._depth -= 1
        if not self._depth:
            self._give_back()

    def _give_back(self) -> None:
        if self._previous is not None:
            replaced = signal.set_wakeup_fd(self._previous)
            if replaced != self._fd:  # set by the code that ran: keep it
                signal.set_wakeup_fd(replaced)
            self._previous = None

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while self._reader.recv(4096):
                pass

    def close(self) -> None:
        """Stop watching and close both ends, before the loop closes (a Ctrl-C closes it
        inside a test: the fd is given back first, never left on a closed socket)."""
        self._give_back()
        if self._reader.fileno() != -1:
            self._loop.remove_reader(self._reader.fileno())
        self._reader.close()
        self._writer.close()


def _task_with_portal(loop: asyncio.AbstractEventLoop, coroutine, **options) -> asyncio.Task:
    if options.get("name") is None:  # asyncio's reports then name the coroutine, not ours
        options["name"] = f"{getattr(coroutine, '__qualname__', coroutine)} (with a portal)"
    task = asyncio.Task(greenback.with_portal_run(_itself, coroutine), loop=loop, **options)
    _portal_coroutines[task] = coroutine
    return task


def task_coroutine(task: asyncio.Task):
    """The coroutine ``task`` runs: for a task with a portal, the one inside it."""
    return _portal_coroutines.get(task) or task.get_coro()


def _without_portal_frames(traceback):
    """``traceback`` without greenback's and outcome's frames, which a test's
    failure would otherwise show between the runner's and the test's."""
    kept = last = None
    while traceback is not None:
        following = traceback.tb_next
        if not traceback.tb_frame.f_code.co_filename.startswith(_PORTAL_FOLDERS):
            if last is None:
                kept = traceback
            else:
                last.tb_next = traceback
            last = traceback
        traceback = following
    if last is not None:
        last.tb_next = None
    return kept


def _itself(coroutine):
    return coroutine


def _forget_outcome(task: asyncio.Task) -> None:
    """Mark an interrupted task's error as seen: it echoes the Ctrl-C already reported.

    Cancelling the task instead would make SQLAlchemy hard-close its connection
    while the driver still runs the statement, and aiosqlite's later close can hang.
    """
    if not task.cancelled():
        task.exception()


_shared: ClassRunner | None = None
_portal_coroutines: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_PORTAL_FOLDERS = tuple(os.path.dirname(module.__file__) + os.sep
                        for module in (greenback, outcome))


def shared_runner() -> ClassRunner:
    """Return this process's runner, making it on first use (and after a fork or a close)."""
    global _shared
    runner = _shared
    if runner is None or runner.pid != os.getpid() or runner.get_loop().is_closed():
        runner = _shared = ClassRunner(debug=project_settings().asyncio_debug.value)
        atexit.register(close_shared_runner)  # a forked worker: the drop hook below
        release_before_dropping(close_shared_runner)
    return runner


def current_runner() -> ClassRunner | None:
    """This process's runner if it is open, without making one."""
    runner = _shared
    if runner is None or runner.pid != os.getpid() or runner.get_loop().is_closed():
        return None
    return runner


def close_shared_runner(*, bound: float | None = None) -> None:
    """Run the runner's closing steps (the shared engines' release), then close its loop.

    Called when the process ends, before its databases are dropped. Only the
    main thread may run the loop; elsewhere (a SIGTERM helper thread) this
    does nothing and the process's exit closes the sockets.
    """
    global _shared
    runner = current_runner()
    if runner is None or threading.current_thread() is not threading.main_thread() \
            or runner.get_loop().is_running():
        return
    _shared = None
    try:
        for step in runner.closing:
            try:
                runner.run(step(bound))
            except Exception:
                logger.exception("could not release the shared engines")
    finally:
        runner.close()


def cancel_leftover_tasks(runner: ClassRunner, test_id: str) -> None:
    """Cancel tasks still on the loop after a test (e.g. made by its cleanups)."""
    if any(not task.done() for task in asyncio.all_tasks(runner.get_loop())):
        runner.run(cancel_other_tasks(test_id, grace=0))


async def cancel_other_tasks(test_id: str, *, grace: float = TASK_GRACE) -> None:
    """Let tasks the test started finish, briefly; cancel the rest before teardown.

    Application code starts tasks it never awaits (a handler's fire-and-forget
    ``create_task``). They run inside the test's isolation while the test
    runs, and get ``grace`` seconds more at teardown, so their work is undone
    with the test's. One still running then would race the teardown's
    ROLLBACK on the same connection ("another operation is in progress"), so
    it is cancelled, with a warning naming the test. One that failed is
    reported, since nobody else will retrieve its error.
    """
    current = asyncio.current_task()
    leftovers = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
    if not leftovers:
        return
    done, running = await asyncio.wait(leftovers, timeout=grace)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            warnings.warn(f"{test_id} started a task that failed after the test's body: "
                          f"{task_coroutine(task)!r} raised {task.exception()!r}",
                          RuntimeWarning, stacklevel=2)
    if not running:
        return
    warnings.warn(f"{test_id} left {len(running)} task(s) running {grace:g}s after its body "
                  f"ended: {[task_coroutine(task) for task in running]!r}; they were cancelled",
                  ResourceWarning, stacklevel=2)
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)


class ClassLoopHooks:
    """Mixin for ``IsolatedAsyncioTestCase``: use the shared runner instead of one per test."""

    # -- CPython private hooks of unittest.IsolatedAsyncioTestCase (3.11-3.13) --

    def _setupAsyncioRunner(self) -> None:
        self._asyncioRunner = shared_runner()

    def _tearDownAsyncioRunner(self) -> None:
        runner, self._asyncioRunner = self._asyncioRunner, None
        if not isinstance(sys.exc_info()[1], KeyboardInterrupt):  # Ctrl-C: the class closes
            cancel_leftover_tasks(runner, self.id())
