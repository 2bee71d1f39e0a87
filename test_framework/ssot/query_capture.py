"""See the SQL a test runs: ``capture_queries()``, ``assertNumQueries(n)``,
``assertMaxQueries(n)``, ``assertNoNPlusOne()`` and the per-test N+1 detector.

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

The context managers work with ``with`` (sync tests, around ``run_async``)
and ``async with``. Passwords in URLs inside statements or parameters are
masked before anything is stored.

The N+1 detector counts the shapes (``ssot/query_shapes.py``) of the
statements that read (SELECT, WITH) over the whole test, and reports a shape
that ran more than ``n_plus_one_threshold`` times as ``n_plus_one`` says
(warn, error, ignore). Writes are left out: tests create rows in loops on
purpose, and the ORM batches its own inserts and updates.
"""

from __future__ import annotations

import contextlib
import contextvars
import unittest
from dataclasses import dataclass
from typing import Any, Iterator

from test_framework.config import ClassSettings, Setting
from test_framework.errors import TestFrameworkError
from test_framework.log import mask_secrets
from test_framework.ssot.metrics import BOOKKEEPING, TestMetrics
from test_framework.ssot.n_plus_one import ShapeCounter, describe_repeats, report_repeats
from test_framework.ssot.query_shapes import reads, statement_shape
from test_framework.ssot.query_snapshots import snapshot_test_methods

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

    @property
    def shapes(self) -> list[str]:
        """Each statement with literals and parameters as ``?`` (``ssot/query_shapes.py``)."""
        return [statement_shape(query.sql, self._metrics.dialect) for query in self.queries]

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
        if exc_type is None and not self.passes():
            ran = f"{len(self)} {'query' if len(self) == 1 else 'queries'}"
            standard = f"{ran} executed, {self.wanted()}; captured:\n{self.render()}"
            self._test.fail(failure_message(self._test, self._msg, standard))

    def passes(self) -> bool:
        return len(self) == self.expected

    def wanted(self) -> str:
        return f"{self.expected} expected"


class MaxQueriesAssertion(NumQueriesAssertion):
    """A capture that fails the test on exit if more than ``expected`` statements ran."""

    def passes(self) -> bool:
        return len(self) <= self.expected

    def wanted(self) -> str:
        return f"at most {self.expected} allowed"


class NPlusOneAssertion:
    """A block that fails the test on exit if a reading shape ran more than ``threshold`` times."""

    def __init__(self, metrics: CapturingMetrics, threshold: Setting, test: unittest.TestCase,
                 msg: str | None) -> None:
        self._metrics = metrics
        self.counter = ShapeCounter()
        self.threshold, self._test, self._msg = threshold, test, msg

    def __enter__(self) -> NPlusOneAssertion:
        self._metrics.counters.append(self.counter)
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self._metrics.counters.remove(self.counter)
        repeats = self.counter.repeats(self.threshold.value)
        if exc_type is None and repeats:
            standard = describe_repeats(
                repeats, where="the assertNoNPlusOne() block", threshold=self.threshold,
                intended="If the repetition is intended, pass a higher threshold")
            self._test.fail(failure_message(self._test, self._msg, standard))

    async def __aenter__(self) -> NPlusOneAssertion:
        return self.__enter__()

    async def __aexit__(self, exc_type, exc, traceback) -> None:
        self.__exit__(exc_type, exc, traceback)


class CapturingMetrics(TestMetrics):
    """``TestMetrics`` that also feeds open captures and ignores the framework's own SQL."""

    __test__ = False

    def __init__(self) -> None:
        super().__init__()
        self.captures: list[QueryCapture] = []
        self.counters: list[ShapeCounter] = []  # the test's N+1 detector, open blocks
        self.dialect = ""  # SQLAlchemy's name for the server: how shapes tokenize

    def on_statement(self, statement: str, parameters: object) -> None:
        if _framework_statement.get() or BOOKKEEPING.match(statement):
            return
        self.statements += 1
        if self.captures:
            query = CapturedQuery(mask_passwords(statement), mask_passwords(parameters))
            for capture in self.captures:
                capture.queries.append(query)
        if self.counters and reads(statement):
            shape, sites = statement_shape(statement, self.dialect), None
            for counter in self.counters:
                sites = counter.add(shape, sites)


class QueryAssertions:
    """The test-case side: captures, query-count assertions, N+1 detection, snapshots."""

    def __init_subclass__(cls, **kwargs) -> None:
        """Wrap each test of a class with ``query_snapshots = True`` (``ssot/query_snapshots.py``)."""
        super().__init_subclass__(**kwargs)
        if ClassSettings(cls).query_snapshots.value:
            snapshot_test_methods(cls)

    def capture_queries(self) -> QueryCapture:
        """Return a context that collects the test's statements run inside it."""
        return QueryCapture(self._ssot_capturing_metrics("capture_queries()"))

    def assertNumQueries(self, expected: int, msg: str | None = None) -> NumQueriesAssertion:
        """Return a context that fails unless exactly ``expected`` statements run inside it."""
        _check_count(f"assertNumQueries({expected!r})", expected, "assertNumQueries(1)")
        metrics = self._ssot_capturing_metrics(f"assertNumQueries({expected})")
        return NumQueriesAssertion(metrics, expected, self, msg)

    def assertMaxQueries(self, expected: int, msg: str | None = None) -> MaxQueriesAssertion:
        """Return a context that fails if more than ``expected`` statements run inside it."""
        _check_count(f"assertMaxQueries({expected!r})", expected, "assertMaxQueries(3)")
        metrics = self._ssot_capturing_metrics(f"assertMaxQueries({expected})")
        return MaxQueriesAssertion(metrics, expected, self, msg)

    def assertNoNPlusOne(self, threshold: int | None = None,
                         msg: str | None = None) -> NPlusOneAssertion:
        """Return a context that fails if a reading statement shape runs more than
        ``threshold`` times inside it (default: the class's ``n_plus_one_threshold``)."""
        if threshold is None:
            limit = ClassSettings(type(self)).n_plus_one_threshold
        else:
            _check_count(f"assertNoNPlusOne({threshold!r})", threshold, "assertNoNPlusOne(3)")
            limit = Setting(threshold, "the assertNoNPlusOne() argument")
        metrics = self._ssot_capturing_metrics(f"assertNoNPlusOne({limit.value})")
        return NPlusOneAssertion(metrics, limit, self, msg)

    def _ssot_watch_queries(self) -> None:
        """Start the test's N+1 detector, as its class's settings say; check it at cleanup."""
        metrics = self._ssot_capturing_metrics("the N+1 detector")
        metrics.dialect = self.engine.dialect.name
        settings = self._ssot_scope.resources.settings  # read once per class
        policy = settings.n_plus_one
        if policy.value == "ignore":
            return
        threshold = settings.n_plus_one_threshold
        counter = ShapeCounter()
        metrics.counters.append(counter)
        self.addCleanup(self._ssot_report_repeats, counter, policy, threshold)

    def _ssot_report_repeats(self, counter: ShapeCounter, policy: Setting,
                             threshold: Setting) -> None:
        metrics = self._ssot_metrics
        if counter in metrics.counters:
            metrics.counters.remove(counter)
        report_repeats(self, counter, policy=policy, threshold=threshold)

    def _ssot_capturing_metrics(self, caller: str) -> CapturingMetrics:
        self._ssot_set_up_on_first_use(caller)
        scope = getattr(self, "_ssot_scope", None)
        if scope is None or not scope.is_open:  # statements reach us only then
            raise TestFrameworkError(
                f"{caller} was used before the test's database was set up; use it inside "
                "a test method, or in asyncSetUp/setUp after calling super()")
        return self._ssot_metrics


def _check_count(call: str, value: object, example: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TestFrameworkError(
            f"{call}: the count must be a whole number of statements, 0 or more, "
            f"e.g. {example}")


def failure_message(test: unittest.TestCase, msg: str | None, standard: str) -> str:
    """Combine a caller's ``msg`` with ours as unittest's ``longMessage`` says."""
    if msg is None:
        return standard
    return f"{standard} : {msg}" if getattr(test, "longMessage", True) else msg
