"""Start-up rows: a one-test suite on a 20-table schema, cold and then warm.

This is what a developer waits for before the first result.  On first use
the library builds a schema template (``test_tpl_<name>_<identity>_<hash>``:
``CREATE DATABASE`` plus the DDL on PostgreSQL, a file in
``$XDG_CACHE_HOME/test_framework/sqlite/`` on SQLite) and clones it; later
runs only clone.  Each repeat first makes the template absent -- drops the
``test_tpl_`` databases derived from the row's own database name, and points
``XDG_CACHE_HOME`` at an empty folder -- then runs the suite (cold), then
runs it again with the template in place (warm).

The child times the whole test run, so provisioning is inside the timing;
imports and discovery stay outside, as in every row.  The library's INFO
log says which run built a template: a cold run that built none, or a warm
run that built one, fails the row instead of reporting a wrong ratio.
"""
import re
import shutil
import tempfile
from pathlib import Path

from .harness import RowFailed

STARTUP_TESTS = 1
TEMPLATE_PREFIX = "test_tpl_"
BUILT = re.compile(r"built template (\S+)")


def measure(bench, row, repeat):
    """Run the suite cold, then warm: the warm run clones the template the cold one built."""
    label = f"repeat {repeat}/{bench.options.repeats}"
    cache_dir = make_cold(bench, row)
    try:
        cold = bench.run_suite(row, STARTUP_TESTS, f"cold, {label}", cache_dir=cache_dir)
        warm = bench.run_suite(row, STARTUP_TESTS, f"warm, {label}", cache_dir=cache_dir)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    built = [templates_built(cold), templates_built(warm)]
    if built != [1, 0]:
        raise RowFailed(f"the cold run built {built[0]} template(s) and the warm run "
                        f"{built[1]}, expected 1 and 0: cold or warm is not what it claims")
    return {"cold_s": cold.seconds, "warm_s": warm.seconds,
            "cold_over_warm": cold.seconds / warm.seconds,
            "connections": [cold.connections, warm.connections], "templates_built": built}


def templates_built(run):
    """Count the distinct templates a child's log says it built (a runner may echo lines)."""
    return len(set(BUILT.findall(run.log)))


def make_cold(bench, row):
    """Drop the row's server templates; return an empty cache folder.

    Only templates derived from the row's own database are dropped, so the
    other rows' warm templates and anyone else's on the server are untouched.
    """
    if row.scenario.postgres:
        for database in row.scenario.setup_dbs:
            bench.admin.drop([name for name in bench.admin.derived_from(database)
                              if name.startswith(TEMPLATE_PREFIX)])
    return Path(tempfile.mkdtemp(prefix="startup-cache-", dir=bench.tmp))
