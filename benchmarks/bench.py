"""Runs the selected rows: server set-up, interleaved repeats, memory, clean-up.

Repeats are interleaved (repeat 1 of every row, then repeat 2, ...) rather
than run row by row, so slow drift on a shared, noisy machine spreads over
all rows instead of biasing whichever row ran during a busy minute.  A row
that fails once is not retried; its error is kept for the table and the
remaining rows go on.

Each row first runs once untimed (warm-up): the library builds a schema
template on first use and clones it afterwards, so without a warm-up the
first small run would pay the build and the first large one would not, and
the slope would come out too low.  Templates the library kept on the server
are dropped at the end like every other database the benchmark caused.

After the timed repeats, each per-test row runs twice more, untimed, at the
same two sizes under ``child.py --count`` (Python calls and database
statements, see ``child_counters``).  Counts barely move with load, so one
pair is enough; the wide gap between the sizes matters more, because a run's
provisioning also does per-run work that depends on what else is on the
server (other suites' leftovers to check), and the slope divides it away.

The start-up, parallel and model-set rows (``startup``, ``parallel``,
``model_sets``) are measured by their own modules inside the same
interleaved repeats; this module gives them environments, child runs and
leftover clean-up (and the first two their suites).
"""
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import harness, model_sets, parallel, scenarios, startup
from .pgadmin import ServerAdmin, is_throwaway

REPO_ROOT = Path(__file__).resolve().parents[1]
GROUP_MEASURES = {"startup": startup.measure, "parallel": parallel.measure,
                  model_sets.GROUP: model_sets.measure}
COUNTING_SLOWDOWN = 5   # a profiled run's timeout, times a timed run's
GROUP_WARM_UPS = {"parallel": parallel.warm_up, model_sets.GROUP: model_sets.warm_up}


@dataclass
class Options:
    """How much to measure; see ``__main__`` for the command-line defaults."""

    sizes: tuple = (100, 1100)
    repeats: int = 5
    memory_tests: int = 10_000
    parallel_tests: int = 2000      # 20 classes of 100: enough for both workers
    pg_user: str = "postgres"
    pg_host: str = "127.0.0.1"
    pg_port: int = 5432
    seconds_per_test_limit: float = 0.25
    warmup: bool = True


@dataclass
class Row:
    """Measurements (or the failure) of one scenario."""

    scenario: scenarios.Scenario
    status: str = "ok"
    error: str = ""
    runs: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)   # calls/statements per test, from _count

    def fail(self, message):
        self.status, self.error = "failed", message


class Benchmark:
    """Owns the temp directory, the server databases and the rows."""

    def __init__(self, selected, options, progress):
        self.options, self.progress = options, progress
        self.rows = [Row(s) for s in selected]
        self.memory = []
        self.ctx = scenarios.Context(options.pg_user, options.pg_host, options.pg_port)
        self.admin = ServerAdmin(options.pg_user, options.pg_host, options.pg_port)
        self.created_dbs = []

    def run(self):
        with tempfile.TemporaryDirectory(prefix="bench-suites-") as tmp:
            self.tmp = Path(tmp)
            try:
                self._prepare_server()
                if self.options.warmup:
                    self._warm_up()
                self._time_rows()
                self._count_rows()
                if self.options.memory_tests:
                    self._measure_memory()
            finally:
                self._drop_created()
                self._drop_derived()
        return self.rows, self.memory

    def _prepare_server(self):
        pg_rows = [row for row in self.rows if row.scenario.postgres]
        if not pg_rows:
            return
        problem = self.admin.check()
        if problem:
            for row in pg_rows:
                row.fail(problem)
            return
        needed = sorted({name for row in pg_rows for name in row.scenario.setup_dbs})
        self.created_dbs = list(needed)
        self._drop_derived()  # left by an interrupted earlier benchmark
        for name in needed:
            self.progress(f"creating database {name}")
            try:
                self.admin.recreate(name, scenarios.SETUP_DBS[name])
            except Exception as exc:  # fail the rows that need it, keep the rest
                for row in pg_rows:
                    if name in row.scenario.setup_dbs:
                        row.fail(f"could not create database {name}: {exc}")

    def _warm_up(self):
        for row in self.rows:
            if row.status != "ok" or row.scenario.group == "startup":  # cold on purpose
                continue
            try:
                if row.scenario.group in GROUP_WARM_UPS:
                    GROUP_WARM_UPS[row.scenario.group](self, row)
                else:
                    self.run_suite(row, self.options.sizes[0], "warm-up, untimed")
            except harness.Interrupted:
                raise
            except harness.RowFailed as exc:
                self.progress(f"  FAILED {row.scenario.key}: {exc}")
                row.fail(str(exc))

    def _time_rows(self):
        for repeat in range(1, self.options.repeats + 1):
            for row in self.rows:
                if row.status == "ok":
                    self._time_once(row, repeat)

    def _time_once(self, row, repeat, measure=None):
        measure = measure or GROUP_MEASURES.get(row.scenario.group, Benchmark._measure_per_test)
        try:
            result = measure(self, row, repeat)
            if result is not None:
                row.runs.append(result)
        except harness.Interrupted:
            raise
        except harness.RowFailed as exc:
            self.progress(f"  FAILED {row.scenario.key}: {exc}")
            row.fail(str(exc))
        except Exception as exc:  # a harness bug fails the row, not the run
            self.progress(f"  FAILED {row.scenario.key}: harness error: {exc!r}")
            row.fail(f"harness error: {exc!r}")

    def _count_rows(self):
        for row in self.rows:
            if row.status == "ok" and row.scenario.group == "per-test":
                self._time_once(row, "count", measure=Benchmark._count)

    def _count(self, row, _label):
        """Python calls and database statements per test, from two untimed counting runs."""
        small, large = (self.run_suite(row, n, "counting, untimed", count=True)
                        for n in self.options.sizes)
        row.counts = {"calls": [small.calls, large.calls],
                      "statements": [small.statements, large.statements],
                      "calls_per_test": harness.count_slope(small, large, "calls"),
                      "statements_per_test": harness.count_slope(small, large, "statements")}
        return None

    def _measure_per_test(self, row, repeat):
        """Measure the slope between a small and a large suite (see ``harness``)."""
        n_small, n_large = self.options.sizes
        small = self.run_suite(row, n_small, f"repeat {repeat}/{self.options.repeats}")
        large = self.run_suite(row, n_large, f"repeat {repeat}/{self.options.repeats}")
        per_test = harness.slope(small, large)
        return {
            "per_test_s": per_test, "fixed_s": harness.fixed_cost(small, per_test),
            "seconds": [small.seconds, large.seconds],
            "connections": [small.connections, large.connections],
            "connections_per_1000": 1000 * (large.connections - small.connections)
                                    / (n_large - n_small),
        }

    def run_suite(self, row, n_tests, label, *, cache_dir=None, count=False):
        """Run the row's suite of ``n_tests`` in a timed child (or a counting one); drop
        what it left."""
        scenario = row.scenario
        suite_dir = self.suite_dir(scenario, n_tests)
        self.progress(f"{scenario.key} N={n_tests} ({label})")
        cmd = harness.child_command(scenario.runner, suite_dir, scenario.postgres, count)
        env = self.env_for(row, suite_dir, cache_dir=cache_dir)
        timeout = self.timeout_for(n_tests) * (COUNTING_SLOWDOWN if count else 1)
        try:
            run = harness.run_child(cmd, env, suite_dir, timeout, n_tests)
        except harness.RowFailed as exc:
            self.drop_leftovers(row, exc.databases)
            raise
        self.drop_leftovers(row, run.databases)
        counted = f", {run.calls} calls, {run.statements} statements" if count else ""
        self.progress(f"  {run.seconds:.2f}s in-child, {run.connections} connection(s)"
                      + counted)
        return run

    def env_for(self, row, suite_dir, *, cache_dir=None):
        """Build the child's environment; ``cache_dir`` replaces the run-wide SQLite cache."""
        return scenarios.child_env(row.scenario, self.ctx, REPO_ROOT, suite_dir,
                                   cache_dir or self.tmp / "cache")

    def timeout_for(self, n_tests):
        return 60 + self.options.seconds_per_test_limit * n_tests

    def suite_dir(self, scenario, n_tests):
        suite_dir = self.tmp / scenario.key / f"n{n_tests}"
        if not suite_dir.exists():
            scenarios.generate(scenario, n_tests, suite_dir)
        return suite_dir

    def drop_leftovers(self, row, databases):
        """Drop throwaway databases a child connected to and left behind."""
        names = {n for n in [*databases, *row.scenario.leftover_dbs]
                 if is_throwaway(n) and n not in scenarios.SETUP_DBS}
        if not row.scenario.postgres or not names:
            return
        try:
            dropped = self.admin.drop(sorted(names))
        except Exception as exc:  # server gone: the row has failed already
            self.progress(f"  could not check for leftover databases: {exc}")
            return
        if dropped:
            note = f"run left database(s) behind (dropped by the benchmark): {dropped}"
            self.progress(f"  WARNING {row.scenario.key}: {note}")
            if note not in row.warnings:
                row.warnings.append(note)

    def _measure_memory(self):
        rows = {row.scenario.key: row for row in self.rows}
        for key, title in scenarios.MEMORY_SCENARIOS:
            row = rows.get(key)
            if row is None:  # memory is measured only for selected rows
                continue
            entry = {"key": key, "title": title, "n_tests": self.options.memory_tests}
            self.memory.append(entry)
            if row.status != "ok":
                entry.update(status="failed", error=row.error)
                continue
            try:
                run = self.run_suite(row, self.options.memory_tests, "memory")
            except harness.Interrupted:
                raise
            except harness.RowFailed as exc:
                entry.update(status="failed", error=str(exc))
                continue
            entry.update(status="ok", rss_start=run.rss_start, rss_end=run.rss_end,
                         seconds=run.seconds, connections=run.connections)

    def _drop_derived(self):
        """Drop test_ databases the library derived from our URL's database."""
        if not self.created_dbs:
            return
        try:
            names = [n for db in self.created_dbs for n in self.admin.derived_from(db)]
            if names:
                self.progress(f"dropping databases the library kept: {names}")
                self.admin.drop(names)
        except Exception as exc:  # report, never mask the real error
            self.progress(f"  could not drop derived databases: {exc}")

    def _drop_created(self):
        if self.created_dbs:
            self.progress(f"dropping {self.created_dbs}")
            try:
                self.admin.drop(self.created_dbs)
            except Exception as exc:  # report, never mask the real error
                self.progress(f"  could not drop {self.created_dbs}: {exc}")
