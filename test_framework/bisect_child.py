"""One run of a bisect: unittest runs the given test ids in that order and writes a report.

``python -m test_framework.bisect_child REPORT ID...`` loads the ids with
unittest's loader (so the order is the one given), runs them with unittest's
text runner, and writes REPORT (JSON): which ids ran, which failed or erred
(with the last lines of their traceback), and the leftover-row reports
(``LeftoverRowsWarning``, or ``LeftoverRowsError`` under
``leftover_rows = "error"``) of the run.
"""

from __future__ import annotations

import json
import sys
import unittest
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from test_framework.ssot.leftovers import LeftoverRowsError, LeftoverRowsWarning

TAIL_LINES = 6


@dataclass
class RunReport:
    """What one run did; ``timed_out`` or a missing report means it told us nothing."""

    ran: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)
    timed_out: bool = False
    output: str = ""
    seconds: float = 0.0

    def failed(self, target: str) -> bool:
        return target in self.failures

    def summary(self, target: str) -> str:
        took = f"{self.seconds:.1f} s"
        if self.timed_out:
            return f"timed out after {took}; counted as not failing"
        if target not in self.ran:
            return f"the target did not run ({took}); counted as not failing"
        return f"{'fails' if self.failed(target) else 'passes'} ({took})"

    def detail(self, target: str) -> str:
        if target in self.failures:
            return ":\n" + self.failures[target]
        if target not in self.ran:  # e.g. a typo in the id: unittest's loader failed
            return (":\n"
                    + "\n".join(self.output.strip().splitlines()[-TAIL_LINES:]))
        return ""


def read_report(path: Path, *, output: str, seconds: float) -> RunReport:
    """The child's report; a child that died before writing one ran nothing we can trust."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return RunReport(output=output, seconds=seconds)
    return RunReport(data["ran"], data["failures"], data["leftovers"], output=output,
                     seconds=seconds)


class _RecordingResult(unittest.TextTestResult):
    """unittest's text result that also keeps the ids it started, in order."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.started: list[str] = []

    def startTest(self, test: unittest.TestCase) -> None:
        self.started.append(test.id())
        super().startTest(test)


def _owner(test: unittest.TestCase) -> str:
    """The id of a test, or of the test a subTest belongs to."""
    return getattr(test, "test_case", test).id()


def run(report: Path, ids: list[str]) -> int:
    leftovers: list[str] = []
    show = warnings.showwarning

    def record(message, category, *args, **kwargs):
        if issubclass(category, LeftoverRowsWarning):
            leftovers.append(str(message))
        show(message, category, *args, **kwargs)

    warnings.showwarning = record
    suite = unittest.defaultTestLoader.loadTestsFromNames(ids)
    result = unittest.TextTestRunner(resultclass=_RecordingResult, verbosity=2).run(suite)
    failures: dict[str, str] = {}
    for test, trace in result.failures + result.errors:
        lines = trace.strip().splitlines()
        failures.setdefault(_owner(test), "\n".join(lines[-TAIL_LINES:]))
        if LeftoverRowsError.__name__ in trace:
            leftovers.append(lines[-1].partition(": ")[2])
    report.write_text(json.dumps({"ran": result.started, "failures": failures,
                                  "leftovers": leftovers}), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1]), sys.argv[2:]))
