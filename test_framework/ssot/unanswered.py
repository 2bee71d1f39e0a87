"""When the database stops answering or closes our connection: bounds, noticing, abandoning.

Three faults the isolation modes and the class cleanup share:

* A server restarted between tests closed the class's connection while no
  loop ran, so nothing read its goodbye: ``notice_closed_connections`` lets
  the driver read it as the next test begins (no round trip), and the mode
  replaces the connection.
* A network gone dark answers nothing, and the server's ``statement_timeout``
  cannot fire. The driver's own bound (asyncpg's ``command_timeout``, 2 s
  past ``statement_timeout``) ends a statement; every teardown step gets at
  most ``teardown_bound`` on top of that.
* What teardown cannot close in time (or after Ctrl-C) is abandoned:
  ``drop_now`` closes the socket without a ROLLBACK, which the server does
  itself once it notices, and ``report_abandoned`` says so.
"""

from __future__ import annotations

import asyncio
import warnings

from test_framework.config import Timeouts
from test_framework.errors import DatabaseUnavailableError
from test_framework.log import current_test_id, get_logger

logger = get_logger(__name__)
# Past statement_timeout, asyncpg gives up at +2 s and SQLAlchemy then waits up to 2 s
# more for a graceful close of the connection; a teardown step may take a little longer.
TEARDOWN_MARGIN = 5.0
# Loop passes that let the driver read what a server sent while no loop ran: its goodbye,
# the end of file, then the transport's connection_lost callback. Three were needed after
# a real restart (tests/test_faults_private.py); one spare. About 20 µs a test.
NOTICE_PASSES = 4


def teardown_bound(backend) -> float:
    """Seconds one teardown step may wait on the server: statement_timeout + a margin."""
    timeouts = backend.timeouts if backend is not None else Timeouts()
    return timeouts.statement + TEARDOWN_MARGIN


async def notice_closed_connections(noticed=lambda: False) -> None:
    """Let the driver read what the server sent while no loop ran, until ``noticed()``.

    Between tests the loop is stopped, so a restart's goodbye and the
    closed socket wait unread, and the driver calls the connection open until
    its next statement fails ("connection is closed").
    """
    for _ in range(NOTICE_PASSES):
        if noticed():
            return
        await asyncio.sleep(0)


def drop_now(connection) -> None:
    """Invalidate a sync ``Connection`` or pooled connection without waiting on the server.

    Called outside SQLAlchemy's greenlet, the pool closes the driver's socket
    at once instead of first trying a graceful close, which on a network gone
    dark waits for the driver's own timeout.
    """
    try:
        connection.invalidate()
    except Exception:
        logger.exception("could not drop connection %r; it is left to the garbage collector",
                         connection)


def no_answer(step: str, what: str, bound: float) -> DatabaseUnavailableError:
    """Report ``what`` abandoned because ``step`` got no answer; return the test's error."""
    why = f"{step} got no answer within {bound:g}s at most"
    report_abandoned(what, why)
    return DatabaseUnavailableError(
        f"{why} (statement_timeout plus a margin): the database server, or the network to "
        f"it, stopped answering. {what[0].upper()}{what[1:]} was abandoned, closed without a "
        "ROLLBACK (the server rolls back when it notices); the next test gets a new one")


def report_abandoned(what: str, why: str) -> None:
    """Say what teardown gave up on, and why: a warning on the console and in the log."""
    test_id = current_test_id.get()
    message = (f"{'test_framework' if test_id == '-' else test_id}: abandoned {what} ({why}); "
               "closed without a ROLLBACK, which the server does itself when it notices")
    logger.warning("%s", message)
    warnings.warn(message, ResourceWarning, stacklevel=3)
