"""Exceptions raised by test_framework.

Every message names the bad value, where it came from and what to do, so a
user can fix the problem without reading framework code. Passwords never
appear: URLs are rendered with :func:`test_framework.log.mask_url` first.
"""


class TestFrameworkError(Exception):
    """Base class for every error the framework raises on its own account."""

    __test__ = False  # not a test, despite the name (pytest collects Test*)


class ConfigurationError(TestFrameworkError):
    """A setting (URL, isolation mode, table mapping) has a value we cannot use."""


class DatabaseUnavailableError(TestFrameworkError):
    """The database server could not be reached or refused the connection."""


class UnsafeDatabaseError(TestFrameworkError):
    """An operation would create, drop or empty a database not made for tests."""


class QueryGuardError(TestFrameworkError, ValueError):
    """A table name or SQL fragment passed to a helper was rejected before running."""


class CleanupError(TestFrameworkError):
    """Removing the rows a test created failed; the database may hold leftovers."""


class SchemaBuildError(TestFrameworkError):
    """Building the schema (metadata, SQL file or migrations) into a template failed."""


class SandboxError(TestFrameworkError):
    """Application code used a sandboxed engine or sessionmaker in a way the sandbox cannot keep
    inside the test's isolation (another event loop, a session bound straight to the engine)."""


class DeferredConstraintError(TestFrameworkError):
    """A test left a violation that only a commit checks (a deferred foreign key), so its
    rollback would have hidden an error a real commit raises."""


class ConcurrentSessionsError(TestFrameworkError):
    """A task waited too long for the rollback-mode connection, or two tasks shared a session."""


class RollbackConflictError(TestFrameworkError):
    """A session's rollback would undo what another session wrote after it."""


class AbortedTransactionError(TestFrameworkError):
    """A read failed where no savepoint could undo it alone; the server refuses the rest."""


class LeftoverRowsError(TestFrameworkError):
    """Raised instead of the warning when ``leftover_rows = "error"``."""


def last_cause(exc: BaseException) -> BaseException:
    """Return the innermost cause of ``exc``, without its traceback, to chain from.

    A driver's frames keep the connection parameters (password included) in
    their local variables, which ``unittest --locals`` and ``pytest -l`` print;
    the innermost error's type and message are what a person needs.
    """
    while exc.__cause__ is not None:
        exc = exc.__cause__
    exc.__context__ = None
    return exc.with_traceback(None)


def shown_alone(exc: BaseException) -> BaseException:
    """Mark ``exc`` to be shown without frames (an error that stops the run says it all).

    ``ClassRunner.run`` raises it again without the frames it gathered on the
    loop: a first use of the database in a test's body would otherwise print
    the frames of the portal that set it up.
    """
    exc._ssot_shown_alone = True
    return exc


def is_shown_alone(exc: BaseException) -> bool:
    return getattr(exc, "_ssot_shown_alone", False)
