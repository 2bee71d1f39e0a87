"""Where the run's time went: an opt-in summary at exit, ``TEST_FRAMEWORK_TIMING=1``.

Each framework test is split into phases:

* provisioning and schema: opening the class's database, schema and
  engine (real work only in a class's first test);
* per-test setup: the rest of the framework's ``asyncSetUp`` (sessions,
  the outer transaction);
* test bodies: from the end of the framework's set-up to the start of its
  teardown, so your own ``setUp``/``tearDown`` code around ``super()`` counts
  here;
* teardown: rollback or cleanup and closing sessions.

When the interpreter exits, the totals and the slowest tests are logged at
INFO on ``test_framework.timing`` and printed to stderr (unless a framework
log handler already prints them). ``TEST_FRAMEWORK_TIMING=25`` lists the 25
slowest instead of 10. ``config`` reads the variable; this module reads the
setting once, at the first test. When it is off, tests get a timer whose
``lap`` does nothing.
"""

from __future__ import annotations

import atexit
import functools
import logging
import sys
import time
from collections import defaultdict

from test_framework.config import DEFAULT_SLOWEST, run_setting
from test_framework.log import get_logger

PHASES = {"provisioning": "provisioning and schema", "setup": "per-test setup",
          "test body": "test bodies", "teardown": "teardown"}
logger = get_logger("test_framework.timing")
_report: TimingReport | None = None


class TimingReport:
    """Seconds per phase, in total and per test."""

    def __init__(self, *, slowest: int = DEFAULT_SLOWEST) -> None:
        self.slowest = slowest
        self.tests: defaultdict[str, dict[str, float]] = defaultdict(
            lambda: dict.fromkeys(PHASES, 0.0))

    def add(self, test_id: str, phase: str, seconds: float) -> None:
        self.tests[test_id][phase] += seconds

    def render(self) -> str:
        """Return the summary: phase totals, then the slowest tests with their phases."""
        totals = {phase: sum(test[phase] for test in self.tests.values()) for phase in PHASES}
        overall = sum(totals.values()) or 1e-9
        lines = [f"test_framework timing: {len(self.tests)} tests, {overall:.2f} s in "
                 "framework test cases"]
        for phase, label in PHASES.items():
            lines.append(f"  {label:<24} {totals[phase]:8.3f} s  {totals[phase] / overall:6.1%}")
        ranked = sorted(self.tests.items(), key=lambda item: sum(item[1].values()), reverse=True)
        lines.append(f"{min(self.slowest, len(ranked))} slowest tests:")
        for test_id, phases in ranked[:self.slowest]:
            parts = ", ".join(f"{phase} {seconds:.3f}" for phase, seconds in phases.items())
            lines.append(f"  {sum(phases.values()):8.3f} s  {test_id}  ({parts})")
        return "\n".join(lines)

    def emit(self) -> None:
        """Log the summary; print it to stderr too unless a framework handler shows it."""
        if not self.tests:
            return
        text = self.render()
        logger.info("%s", text)
        root = logging.getLogger("test_framework")
        shown = logger.isEnabledFor(logging.INFO) and any(
            getattr(handler, "_test_framework", False) for handler in root.handlers)
        if not shown:
            print(text, file=sys.stderr)


class TestTimer:
    """Time one test: each ``lap(phase)`` adds the time since the previous lap."""

    __test__ = False
    __slots__ = ("_report", "_test_id", "_last")

    def __init__(self, report: TimingReport, test_id: str) -> None:
        self._report = report
        self._test_id = test_id
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self._report.add(self._test_id, phase, now - self._last)
        self._last = now


class NullTimer:
    """The timer tests get when timing is off."""

    __slots__ = ()

    def lap(self, phase: str) -> None:
        pass


NULL_TIMER = NullTimer()


def timer_for(test_id: str) -> TestTimer | NullTimer:
    """Return a timer for the test: a real one only when ``TEST_FRAMEWORK_TIMING`` is on."""
    global _report
    slowest = slowest_tests()
    if slowest is None:
        return NULL_TIMER
    if _report is None:
        _report = TimingReport(slowest=slowest)
        atexit.register(_report.emit)
    return TestTimer(_report, test_id)


@functools.cache
def slowest_tests() -> int | None:
    """Return how many slowest tests to list, or None when timing is off (read once)."""
    return run_setting("timing").value
