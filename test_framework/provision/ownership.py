"""Who made a test database, and whether its maker is provably gone.

Every per-run database is labelled ``test_framework run=<host>.<pid>.<random>``
(a database comment on PostgreSQL; the run's folder for SQLite), but a label
only says who made it. Proof of life is a lock the run holds for as long as
it lives: a session-level advisory lock on PostgreSQL, an ``flock`` on the
run folder's ``owner.lock`` on SQLite. The server or the kernel releases it
when the process dies, whatever its PID namespace or host name. A database
is an orphan, and is dropped by the next run, only when its run's lock is
free and (on PostgreSQL) nothing is connected to it. Templates, kept
databases (``keep_database``, and the states of failed tests that
``TEST_FRAMEWORK_KEEP_FAILED`` keeps) and anything unlabelled are never reaped.
"""

from __future__ import annotations

from test_framework.backends import Backend
from test_framework.backends.base import DatabaseRecord, run_of
from test_framework.log import get_logger

logger = get_logger(__name__)
TEMPLATE_LABEL = "test_framework template"
KEPT_LABEL = "test_framework kept"
KEPT_FAILED_LABEL = "test_framework kept-failed test="


def kept_failed_label(test_id: str) -> str:
    """The label of a failed test's kept state: never reaped, names the test."""
    return f"{KEPT_FAILED_LABEL}{test_id}"


def kept_failed_test(record: DatabaseRecord) -> str | None:
    """The id of the failed test whose state ``record`` keeps, else None."""
    label = record.label or ""
    return label[len(KEPT_FAILED_LABEL):] if label.startswith(KEPT_FAILED_LABEL) else None


def template_label(stem: str, used: float) -> str:
    """A template's label: ours, for exactly this database name, and when it was last used."""
    return f"{TEMPLATE_LABEL} name={stem} used={used:.0f}"


def template_of(record: DatabaseRecord) -> tuple[str, float] | None:
    """Return ``(name, last used)`` for a template this framework labelled, else None."""
    prefix = f"{TEMPLATE_LABEL} name="
    if not (record.label or "").startswith(prefix):
        return None
    name, _, used = record.label[len(prefix):].rpartition(" used=")
    if not name:  # labelled by an earlier version: "built=" is its last known use
        name, _, used = record.label[len(prefix):].rpartition(" built=")
    try:
        return name, float(used)
    except ValueError:
        return None


async def reap_orphans(backend: Backend) -> list[str]:
    """Drop the orphans on ``backend``'s server; return their names."""
    reaped = []
    for record in await backend.list_databases():
        if run_of(record.label) is None:
            continue
        async with backend.claim_orphan(record) as orphan:
            if orphan:
                await backend.drop_database(record.url)
                reaped.append(record.name)
                logger.warning("dropped %s, left by a run that no longer exists", record.name)
    return reaped


async def describe(backend: Backend, record: DatabaseRecord) -> str:
    """One word or phrase for ``databases list``: orphan, live run, template, kept, ..."""
    if run_of(record.label) is not None:
        async with backend.claim_orphan(record) as orphan:
            return "orphan" if orphan else f"live ({record.label})"
    if kept_failed_test(record) is not None:
        return f"kept-failed: the state {kept_failed_test(record)} saw (never reaped)"
    return record.label or "no label (not made by this framework: never dropped automatically)"


async def held_by_live_run(backend: Backend, record: DatabaseRecord) -> bool:
    """True for another run's database while that run still holds it."""
    if run_of(record.label) is None:
        return False
    async with backend.claim_orphan(record) as orphan:
        return not orphan
