"""Per-test metrics: custom values, elapsed time and a count of SQL statements.

Statements are counted through the engine's ``before_cursor_execute`` event,
so the count is what really reached the database. Transaction bookkeeping
(BEGIN, SAVEPOINT, RELEASE, ROLLBACK TO) is not the test's own work and is
not counted.
"""

from __future__ import annotations

import re
import time
from typing import Any

BOOKKEEPING = re.compile(
    r"\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE\s+SAVEPOINT)\b", re.IGNORECASE)


class TestMetrics:
    """What ``record_metric`` / ``get_all_metrics`` read and write for one test."""

    __test__ = False

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.statements = 0
        self.manual_queries = 0
        self.custom: dict[str, Any] = {}

    def on_statement(self, statement: str, parameters: object) -> None:
        if not BOOKKEEPING.match(statement):
            self.statements += 1

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def record(self, name: str, value: Any) -> None:
        self.custom[name] = value

    def get(self, name: str, default: Any = None) -> Any:
        return self.all().get(name, default)

    def all(self) -> dict[str, Any]:
        """Return custom metrics plus ``execution_time`` and ``db_query_count``."""
        return {**self.custom,
                "execution_time": self.elapsed,
                "db_query_count": self.statements + self.manual_queries}


_running: TestMetrics | None = None  # the test running in this process: one at a time


def set_running_metrics(metrics: TestMetrics | None) -> TestMetrics | None:
    """Make ``metrics`` the running test's (what engines count into); return the previous."""
    global _running
    previous, _running = _running, metrics
    return previous


def count_statement(statement: str, parameters: object) -> None:
    """Every engine's statement listener: count into the running test's metrics, if any."""
    metrics = _running
    if metrics is not None:
        metrics.on_statement(statement, parameters)
