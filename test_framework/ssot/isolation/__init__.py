"""Isolation modes: how a test gets its sessions and how its writes are undone.

Four modes, each the only place that knows what it does, all following the
steps of ``protocol.Isolation`` (open class, begin test, end test, close
class):

* ``"rollback"`` (default, ``rollback.py``): one connection and transaction
  for the class, a savepoint each test rolls back to.
* ``"commit"`` (``commit.py``): real commits; tracked rows are deleted.
* ``"truncate"``: real commits; every table is emptied after each test.
* ``"database"``: real commits in a database of the class's own.
"""

from __future__ import annotations

from test_framework.config import Setting
from test_framework.errors import ConfigurationError
from test_framework.ssot.isolation.commit import (CommitIsolation, DatabaseIsolation,
                                                  TruncateIsolation)
from test_framework.ssot.isolation.protocol import (Isolation, IsolationSettings, KeepState,
                                                    TestSessions)
from test_framework.ssot.isolation.rollback import RollbackIsolation

__all__ = ["CommitIsolation", "DatabaseIsolation", "ISOLATION_MODES", "Isolation",
           "IsolationSettings", "KeepState", "RollbackIsolation", "TestSessions",
           "TruncateIsolation", "isolation_mode"]

ISOLATION_MODES = {mode.name: mode for mode in
                   (RollbackIsolation, CommitIsolation, TruncateIsolation, DatabaseIsolation)}


def isolation_mode(setting: Setting) -> type[Isolation]:
    """Return the isolation mode ``setting`` names, or explain the choices."""
    if setting.value not in ISOLATION_MODES:
        raise ConfigurationError(
            f"{setting.source} is {setting.value!r}; use one of "
            f"{sorted(ISOLATION_MODES)}: 'rollback' undoes each test with one transaction, "
            "'commit' makes real commits and deletes the rows the test created, 'truncate' "
            "empties every table after each test, 'database' gives the class its own database")
    return ISOLATION_MODES[setting.value]
