"""Child-process driver: runs one generated suite and reports its own timing.

Run as a *script* (``python ./benchmarks/child.py``), never as
``benchmarks.child``: as a script it imports nothing but the standard library
before the suite runs, so the floor rows never pay for the library, and a
broken library import fails only the rows that use it. Runner libraries are
imported lazily.

Why the child times itself: the parent wants the cost of *running* tests.
Interpreter start-up, imports and test discovery are excluded by timing only
the run phase, which each runner exposes through a documented hook:

* unittest -- ``unittest.main`` (the code path of ``python -m unittest``)
  with a ``TextTestRunner`` subclass whose ``run`` is timed;
* nose2    -- ``nose2.discover`` (``python -m nose2``) with a plugin instance
  on the ``startTestRun``/``stopTestRun`` hooks;
* pytest   -- ``pytest.main`` (``python -m pytest``) with a plugin wrapping
  ``pytest_runtestloop``;
* django   -- ``DiscoverRunner``: test-database setup/teardown is outside the
  timed ``run_suite`` call (it is a per-process cost, like discovery).

The last stdout line starting with ``RESULT_MARKER`` carries a JSON object:
seconds, test counts, first error text, resident memory before/after the run,
and client-side connection counts (see ``ConnectionCounter``).  With
``--count`` the run is profiled instead (untimed): it adds Python calls and
database statements (see ``child_counters``).
"""
import argparse
import json
import os
import sys
import time
import traceback

RESULT_MARKER = "BENCH-RESULT "
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes():
    """Current resident set size, from /proc/self/statm (Linux)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * PAGE_SIZE
    except OSError:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class ConnectionCounter:
    """Counts server connections opened by this process, client side.

    Server-side counters are not usable: ``pg_stat_database.sessions`` is
    per database and a throwaway test database's row vanishes when it is
    dropped, ``numbackends`` is not cumulative, and backends flush stats
    lazily.  Every PostgreSQL connection a scenario makes goes through
    ``asyncpg.connect`` (SQLAlchemy's asyncpg dialect looks it up on the
    module at connect time) or ``psycopg.connect`` (Django), so wrapping those
    module attributes before any test module is imported counts them all,
    admin connections included.  Database names are recorded too, so the
    parent can find and drop any database a run left behind.  A connection
    made by other means (e.g. a ``psql`` subprocess) would not be counted.
    """

    def __init__(self):
        self.count = 0
        self.databases = set()

    def install(self):
        for name in ("asyncpg", "psycopg"):
            try:
                module = __import__(name)
            except ImportError:
                continue
            module.connect = self._wrap(module.connect)

    def _wrap(self, connect):
        counter = self

        def counted_connect(*args, **kwargs):
            counter.count += 1
            counter.saw_database(kwargs.get("database") or kwargs.get("dbname"))
            return connect(*args, **kwargs)

        counted_connect.__wrapped__ = connect
        return counted_connect

    def saw_database(self, name):
        """Remember ``name``; append it to $BENCH_DB_LOG at once, so the parent
        can clean up even if this process is killed on timeout."""
        if not name or str(name) in self.databases:
            return
        self.databases.add(str(name))
        log_path = os.environ.get("BENCH_DB_LOG")
        if log_path:
            with open(log_path, "a") as fh:
                fh.write(f"{name}\n")


class Outcome:
    """What the timed run produced; filled in by the runner adapters."""

    def __init__(self, counters=()):
        self.counters = counters   # started and stopped around the run, innermost
        self.seconds = None
        self.tests_run = 0
        self.problems = 0
        self.first_error = None
        self.rss_start = None
        self.rss_end = None

    def note_problem(self, text):
        self.problems += 1
        if self.first_error is None:
            self.first_error = str(text)[-3000:]

    def start(self):
        self.rss_start = rss_bytes()
        self._t0 = time.perf_counter()
        for counter in self.counters:
            counter.start()

    def stop(self):
        for counter in reversed(self.counters):
            counter.stop()
        self.seconds = time.perf_counter() - self._t0
        self.rss_end = rss_bytes()


def run_unittest(directory, outcome):
    import unittest

    class TimedRunner(unittest.TextTestRunner):
        def run(self, test):
            outcome.start()
            result = super().run(test)
            outcome.stop()
            record_unittest_result(result, outcome)
            return result

    argv = ["python -m unittest", "discover", "-s", directory, "-t", directory,
            "-p", "test_*.py"]
    unittest.main(module=None, argv=argv, testRunner=TimedRunner, exit=False)


def record_unittest_result(result, outcome):
    outcome.tests_run = result.testsRun
    for _test, text in list(result.errors) + list(result.failures):
        outcome.note_problem(text)
    for _test in getattr(result, "unexpectedSuccesses", []):
        outcome.note_problem("unexpected success")


def run_nose2(directory, outcome):
    import nose2

    class Timer:
        def startTestRun(self, event):
            outcome.start()

        def stopTestRun(self, event):
            outcome.stop()

        def testOutcome(self, event):
            outcome.tests_run += 1
            if event.outcome in ("passed", "skipped"):
                return
            if event.exc_info:
                outcome.note_problem("".join(traceback.format_exception(*event.exc_info)))
            else:
                outcome.note_problem(event.reason or event.outcome)

    timer = Timer()
    hooks = [(name, timer) for name in ("startTestRun", "stopTestRun", "testOutcome")]
    nose2.discover(argv=["nose2", "-s", directory, "-t", directory],
                   exit=False, extraHooks=hooks)


def run_pytest(directory, outcome):
    import pytest

    class Timer:
        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtestloop(self, session):
            outcome.start()
            yield
            outcome.stop()

        def pytest_runtest_logreport(self, report):
            if report.when == "call":
                outcome.tests_run += 1
            if report.failed:
                outcome.note_problem(report.longreprtext)

        def pytest_collectreport(self, report):
            if report.failed:
                outcome.note_problem(report.longreprtext)

    pytest.main(["-q", "-p", "no:cacheprovider", directory], plugins=[Timer()])


def run_django(directory, outcome):
    """Django's own runner; settings come from BENCH_DJANGO_DATABASE (JSON)."""
    import django
    from django.conf import settings

    settings.configure(
        DATABASES={"default": json.loads(os.environ["BENCH_DJANGO_DATABASE"])},
        INSTALLED_APPS=["benchapp"],
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        USE_TZ=True,
    )
    django.setup()
    from django.test.runner import DiscoverRunner

    runner = DiscoverRunner(verbosity=0, interactive=False)
    runner.setup_test_environment()
    old_config = runner.setup_databases()
    try:
        suite = runner.build_suite([directory])
        outcome.start()
        result = runner.run_suite(suite)
        outcome.stop()
        record_unittest_result(result, outcome)
    finally:
        runner.teardown_databases(old_config)
        runner.teardown_test_environment()


RUNNERS = {"unittest": run_unittest, "nose2": run_nose2,
           "pytest": run_pytest, "django": run_django}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runner", choices=sorted(RUNNERS), required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--count-connections", action="store_true")
    parser.add_argument("--count", action="store_true",
                        help="count Python calls and database statements (slow: untimed)")
    args = parser.parse_args(argv)
    sys.path.insert(0, args.dir)
    counter = ConnectionCounter()
    if args.count_connections:
        counter.install()
    counts = {}
    if args.count:
        from child_counters import CallCounter, StatementCounter  # a sibling, stdlib only

        calls, statements = CallCounter(), StatementCounter()
        statements.install()
        outcome = Outcome([statements, calls])
    else:
        outcome = Outcome()
    try:
        RUNNERS[args.runner](args.dir, outcome)
    except BaseException as exc:  # report, don't die silently (SystemExit too)
        outcome.note_problem("".join(traceback.format_exception(exc)))
    if args.count:
        counts = {"calls": calls.calls, "statements": statements.statements,
                  "uncounted": sorted(statements.uncounted)}
    report = dict(vars(outcome), connections=counter.count,
                  databases=sorted(counter.databases), **counts)
    report.pop("_t0", None)
    report.pop("counters", None)
    sys.stdout.write("\n" + RESULT_MARKER + json.dumps(report) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
