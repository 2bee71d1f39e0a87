"""Find the earlier tests after which a test fails: ``python -m test_framework bisect``.

::

    python -m test_framework bisect app.tests.test_orders.Orders.test_total \\
        --seed 1234 -- discover -s app/tests

The order comes from a failed run: ``--seed N`` (a ``TEST_FRAMEWORK_SHUFFLE``
run), ``--order FILE`` (test ids one a line, unittest's dotted ids or
pytest's ``path.py::Class::test``), or, by default, the order unittest loads
the suite given after ``--`` in (the arguments of ``python -m unittest``).

The target runs alone first: if it fails alone, no other test is to blame.
Then every test before it runs, then ever smaller subsets of them (delta
debugging, ``ddmin``), each run a fresh ``python -m unittest`` process with
the candidates and the target in their order, unshuffled, bounded by
``--timeout``. The result is a smallest set of tests that still makes the
target fail, usually one. Rows the polluter left behind, as the commit-mode
leftover detector reports them, are shown beside it.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from test_framework.bisect_child import RunReport, read_report
from test_framework.config import ENVIRONMENT_KEYS
from test_framework.shuffle import describe_unittest, leaves, ordered

DEFAULT_TIMEOUT = 600.0


@dataclass
class Outcome:
    """What bisecting found: the polluters (empty when none), and how many runs it took."""

    polluters: list[str]
    runs: int
    reason: str = ""
    leftovers: dict[str, str] = field(default_factory=dict)  # polluter -> "users +1"


def main(argv: list[str], *, prog: str) -> int:
    own, runner_args = _split(argv)
    parser = argparse.ArgumentParser(
        prog=prog, usage=f"{prog} TARGET [--seed N | --order FILE] [--timeout S] "
        "[-- UNITTEST_ARGS ...]", description="Find the earlier tests after which a test fails.",
        epilog="The arguments after -- are those of python -m unittest that load the failed "
        "run's suite (none: discover from here); not needed with --order.")
    parser.add_argument("target", metavar="TARGET",
                        help="id of the test that failed, e.g. pkg.module.Class.test")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--seed", type=int, metavar="N",
                        help="the TEST_FRAMEWORK_SHUFFLE seed of the run")
    source.add_argument("--order", type=Path, metavar="FILE",
                        help="a file of test ids in the run's order")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                        help=f"seconds per run (default {DEFAULT_TIMEOUT:.0f})")
    args = parser.parse_args(own)
    if args.timeout <= 0:
        parser.error(f"--timeout is {args.timeout:g}; give the seconds one run may take, "
                     "e.g. 600")
    try:
        order = (read_order(args.order) if args.order
                 else loaded_order(runner_args, seed=args.seed))
        candidates = earlier_tests(order, args.target, source=_source(args, runner_args))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    outcome = bisect(args.target, candidates,
                     lambda ids: run_in_order(ids, timeout=args.timeout), progress=_progress)
    print(describe(args.target, outcome))
    return 0 if outcome.polluters else 1


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1:]
    return argv, []


def _source(args: argparse.Namespace, runner_args: list[str]) -> str:
    if args.order:
        return str(args.order)
    loaded = f"python -m unittest {' '.join(runner_args)}".rstrip()
    return f"{loaded} shuffled with seed {args.seed}" if args.seed is not None else loaded


def read_order(path: Path) -> list[str]:
    """Test ids, one a line; blank lines and ``#`` comments skipped, pytest ids converted."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"--order {str(path)!r} cannot be read ({exc.strerror}); give a "
                         "file with one test id a line") from exc
    return [_dotted(line.strip()) for line in lines
            if line.strip() and not line.lstrip().startswith("#")]


def _dotted(test_id: str) -> str:
    """``tests/test_x.py::Class::test`` as unittest's ``tests.test_x.Class.test``."""
    if "::" not in test_id:
        return test_id
    path, *names = test_id.split("::")
    module = path.removesuffix(".py").replace("/", ".").replace("\\", ".")
    return ".".join([module, *names])


class _Loading(unittest.TestProgram):
    """``python -m unittest ARGS`` up to the loaded suite, without running it."""

    def runTests(self) -> None:
        pass


def loaded_order(runner_args: list[str], *, seed: int | None) -> list[str]:
    """The ids ``python -m unittest <runner_args>`` would run, in order (shuffled by ``seed``)."""
    suite = _Loading(module=None, argv=["python -m unittest", *runner_args], exit=False).test
    tests = list(leaves(suite))
    if seed is not None:
        tests = ordered(tests, seed, describe_unittest)
    return [test.id() for test in tests]


def earlier_tests(order: list[str], target: str, *, source: str) -> list[str]:
    if target not in order:
        raise ValueError(f"{target!r} is not among the {len(order)} tests of {source}; give "
                         "the id as unittest prints it (module.Class.test), and the runner "
                         "arguments of the failed run after --")
    return order[:order.index(target)]


Run = Callable[[list[str]], RunReport]


def bisect(target: str, candidates: list[str], run: Run, *,
           progress: Callable[[str], None] = lambda line: None) -> Outcome:
    """Run the target alone, after every candidate, then ``ddmin`` the candidates."""
    reports: dict[tuple[str, ...], RunReport] = {}

    def fails_after(subset: list[str]) -> bool:
        key = tuple(subset)
        if key not in reports:
            progress(f"run {len(reports) + 1}: the target after {len(subset)} of "
                     f"{len(candidates)} earlier test(s)")
            reports[key] = run([*subset, target])
            progress(f"       {reports[key].summary(target)}")
        return reports[key].failed(target)

    if fails_after([]) or target not in reports[()].ran:
        return Outcome([], len(reports), ("it fails alone: no earlier test is to blame"
                                          if fails_after([]) else "unittest did not run it")
                       + reports[()].detail(target))
    if not candidates:
        return Outcome([], len(reports), "no test runs before it in this order: "
                       "nothing to bisect")
    if not fails_after(candidates):
        return Outcome([], len(reports), f"it passes after the {len(candidates)} earlier "
                       "test(s) too: this order does not make it fail")
    polluters = ddmin(candidates, fails_after,
                      progress=lambda left: progress(f"{left} candidate(s) left"))
    return Outcome(polluters, len(reports),
                   leftovers=left_rows(reports[tuple(polluters)].leftovers, polluters))


def left_rows(reports: list[str], tests: list[str]) -> dict[str, str]:
    """``{test: "users +1"}`` from the leftover detector's messages about ``tests``."""
    found = {}
    for message in reports:
        test, _, rest = message.partition(" left rows behind: ")
        if test in tests and rest:
            found[test] = rest.split(". ")[0]
    return found


def ddmin(candidates: list[str], fails: Callable[[list[str]], bool], *,
          progress: Callable[[int], None] = lambda left: None) -> list[str]:
    """Zeller's delta debugging: a 1-minimal subset of ``candidates`` for which ``fails``.

    ``fails(candidates)`` must be true. Subsets keep the candidates' order.
    """
    granularity = 2
    while len(candidates) >= 2:
        progress(len(candidates))
        chunks = _split_into(candidates, granularity)
        complements = [[test for other in chunks if other is not chunk for test in other]
                       for chunk in chunks]
        failing = next((chunk for chunk in chunks if fails(chunk)), None)
        if failing is not None:
            candidates, granularity = failing, 2
            continue
        failing = next((rest for rest in complements if granularity > 2 and fails(rest)), None)
        if failing is not None:
            candidates, granularity = failing, max(granularity - 1, 2)
            continue
        if granularity >= len(candidates):
            break
        granularity = min(len(candidates), granularity * 2)
    return candidates


def _split_into(items: list[str], count: int) -> list[list[str]]:
    size, extra = divmod(len(items), count)
    chunks, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        chunks.append(items[start:end])
        start = end
    return [chunk for chunk in chunks if chunk]


def run_in_order(ids: list[str], *, timeout: float) -> RunReport:
    """Run ``ids`` in this order in a fresh unittest process, unshuffled; report outcomes."""
    with tempfile.TemporaryDirectory(prefix="test_framework_bisect_") as folder:
        report = Path(folder, "report.json")
        env = dict(os.environ, **{ENVIRONMENT_KEYS["shuffle"]: "off"})
        command = [sys.executable, "-m", "test_framework.bisect_child", str(report), *ids]
        started = time.monotonic()
        with subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) as process:
            try:
                output, _ = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                output = _stop(process)
                return RunReport(timed_out=True, output=output,
                                 seconds=time.monotonic() - started)
        return read_report(report, output=output, seconds=time.monotonic() - started)


def _stop(process: subprocess.Popen) -> str:
    """Ctrl-C first, so the child's exit hooks drop its test databases; then kill."""
    process.send_signal(signal.SIGINT)
    try:
        return process.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()[0]


def _progress(line: str) -> None:
    print(f"bisect: {line}", file=sys.stderr, flush=True)


def describe(target: str, outcome: Outcome) -> str:
    if not outcome.polluters:
        return f"{target}: {outcome.reason}\n{outcome.runs} run(s)"
    lines = [f"{target} passes alone and fails after "
             f"{'this test' if len(outcome.polluters) == 1 else 'these tests'}:"]
    for test in outcome.polluters:
        left = outcome.leftovers.get(test)
        lines.append(f"    {test}" + (f"  (left rows behind: {left})" if left else ""))
    lines.append(f"{outcome.runs} run(s)")
    return "\n".join(lines)
