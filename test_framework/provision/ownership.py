"""Who made a test database, and whether its maker is gone.

Every per-run database carries a label ``test_framework pid=<pid>
host=<host>`` (a database comment on PostgreSQL; the owner's folder name for
SQLite). A database whose owner process on this host has died (``kill -9``,
power loss) is an orphan: the next run drops it. Databases of live runs,
of other hosts, templates and kept databases are never touched.
"""

from __future__ import annotations

import os
import re
import socket

from test_framework.backends import Backend
from test_framework.backends.base import DatabaseRecord
from test_framework.log import get_logger

logger = get_logger(__name__)
LABEL = re.compile(r"^test_framework pid=(\d+) host=(\S+)$")
TEMPLATE_LABEL = "test_framework template"
KEPT_LABEL = "test_framework kept"


def owner_label() -> str:
    return f"test_framework pid={os.getpid()} host={socket.gethostname()}"


def is_orphan(record: DatabaseRecord) -> bool:
    """True only for our per-run databases whose owner on this host no longer runs."""
    match = LABEL.match(record.label or "")
    if not record.name.startswith("test_") or match is None:
        return False
    pid, host = int(match.group(1)), match.group(2)
    return host == socket.gethostname() and not _alive(pid)


async def reap_orphans(backend: Backend) -> list[str]:
    """Drop the orphans on ``backend``'s server; return their names."""
    reaped = []
    for record in await backend.list_databases():
        if is_orphan(record):
            await backend.drop_database(record.url)
            reaped.append(record.name)
            logger.warning("dropped %s, left by a run that no longer exists", record.name)
    return reaped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
