"""See the SQL a test runs: ``capture_queries()`` and ``assertNumQueries(n)``.

Statements reach us through the engine's ``before_cursor_execute`` listener
(``ClassResources`` hands them to the test's metrics), so a capture sees what
really went to the database, whoever sent it: ``self.db``, ``self.session``
or an application session from ``self.session_factory``, in either
isolation mode. Two kinds of statements are left out, because a test cannot
control them and counting them would make numbers change between runs:

* transaction bookkeeping (``BEGIN``, ``SAVEPOINT``, ``RELEASE``,
  ``ROLLBACK TO``), which rollback isolation adds around every commit;
* the framework's own queries, run inside :func:`framework_statements`:
  table reflection on first use and the row assertions' look-ups.

Both context managers work with ``with`` (sync tests, around ``run_async``)
and ``async with``. Passwords in URLs inside statements or parameters are
masked before anything is stored.
"""

from __future__ import annotations

import contextlib
import contextvars
import unittest
from dataclasses import dataclass
from typing import Any, Iterator

from test_framework.errors import TestFrameworkError
from test_framework.log import mask_secrets
from test_framework.ssot.metrics import BOOKKEEPING, TestMetrics

__unittest = True  # an assertNumQueries failure points at the test, not at this module

_framework_statement: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "test_framework_statement", default=False)


@contextlib.contextmanager
def framework_statements() -> Iterator[None]:
    """Mark SQL run inside as the framework's own, so tests neither count nor capture it."""
    token = _framework_statement.set(True)
    try:
        yield
    finally:
        _framework_statement.reset(token)


def mask_passwords(value: Any) -> Any:
    """Return ``value`` with every password masked (``log.mask_secrets``), deeply."""
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, (list, tuple)):
        return type(value)(mask_passwords(item) for item in value)
    if isinstance(value, dict):
        return {key: mask_passwords(item) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class CapturedQuery:
    """One statement as the driver received it, with its parameters."""

    sql: str
    parameters: Any

    def __str__(self) -> str:
        sql = " ".join(self.sql.split())
        return f"{sql} -- parameters: {self.parameters!r}" if self.parameters else sql


class QueryCapture:
    """The statements run while the block is open; a sequence of ``CapturedQuery``."""

    def __init__(self, metrics: CapturingMetrics) -> None:
        self._metrics = metrics
        self.queries: list[CapturedQuery] = []

    def __enter__(self) -> QueryCapture:
        self._metrics.captures.append(self)
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self._metrics.captures.remove(self)

    async def __aenter__(self) -> QueryCapture:
        return self.__enter__()

    async def __aexit__(self, exc_type, exc, traceback) -> None:
        self.__exit__(exc_type, exc, traceback)

    def __len__(self) -> int:
        return len(self.queries)

    def __iter__(self) -> Iterator[CapturedQuery]:
        return iter(self.queries)

    def __getitem__(self, index):
        return self.queries[index]

    @property
    def statements(self) -> list[str]:
        """The SQL text of each captured statement, in order."""
        return [query.sql for query in self.queries]

    def render(self) -> str:
        """Number the captured statements, one a line, for failure messages."""
        if not self.queries:
            return "  (no queries)"
        return "\n".join(f"  {number}. {query}" for number, query in enumerate(self.queries, 1))


class NumQueriesAssertion(QueryCapture):
    """A capture that fails the test on exit unless exactly ``expected`` statements ran."""

    def __init__(self, metrics: CapturingMetrics, expected: int, test: unittest.TestCase,
                 msg: str | None) -> None:
        super().__init__(metrics)
        self.expected = expected
        self._test = test
        self._msg = msg

    def __exit__(self, exc_type, exc, traceback) -> None:
        super().__exit__(exc_type, exc, traceback)
        if exc_type is None and len(self) != self.expected:
            ran = f"{len(self)} {'query' if len(self) == 1 else 'queries'}"
            standard = f"{ran} executed, {self.expected} expected; captured:\n{self.render()}"
            self._test.fail(failure_message(self._test, self._msg, standard))


class CapturingMetrics(TestMetrics):
    """``TestMetrics`` that also feeds open captures and ignores the framework's own SQL."""

    __test__ = False

    def __init__(self) -> None:
        super().__init__()
        self.captures: list[QueryCapture] = []

    def on_statement(self, statement: str, parameters: object) -> None:
        if _framework_statement.get():
            return
        super().on_statement(statement, parameters)
        if self.captures and not BOOKKEEPING.match(statement):
            query = CapturedQuery(mask_passwords(statement), mask_passwords(parameters))
            for capture in self.captures:
                capture.queries.append(query)


class QueryAssertions:
    """The test-case side: ``capture_queries()`` and ``assertNumQueries(n)``."""

    def capture_queries(self) -> QueryCapture:
        """Return a context that collects the test's statements run inside it."""
        return QueryCapture(self._ssot_capturing_metrics("capture_queries()"))

    def assertNumQueries(self, expected: int, msg: str | None = None) -> NumQueriesAssertion:
        """Return a context that fails unless exactly ``expected`` statements run inside it."""
        if not isinstance(expected, int) or isinstance(expected, bool) or expected < 0:
            raise TestFrameworkError(
                f"assertNumQueries({expected!r}): the expected count must be a whole number "
                "of statements, 0 or more, e.g. assertNumQueries(1)")
        metrics = self._ssot_capturing_metrics(f"assertNumQueries({expected})")
        return NumQueriesAssertion(metrics, expected, self, msg)

    def _ssot_capturing_metrics(self, caller: str) -> CapturingMetrics:
        if getattr(self, "_ssot_sessions", None) is None:  # statements reach us only then
            raise TestFrameworkError(
                f"{caller} was used before the test's database was set up; use it inside "
                "a test method, or in asyncSetUp/setUp after calling super()")
        return self._ssot_metrics


def failure_message(test: unittest.TestCase, msg: str | None, standard: str) -> str:
    """Combine a caller's ``msg`` with ours as unittest's ``longMessage`` says."""
    if msg is None:
        return standard
    return f"{standard} : {msg}" if getattr(test, "longMessage", True) else msg
