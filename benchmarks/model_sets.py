"""Model-set rows: a 6-test suite with three ``MetaData`` model sets, whole pytest runs.

The question is whether a small suite with several model sets runs faster
under the framework than the pytest fixtures a user would write without it.
Both suites have three test modules, one per model set (three tables each,
names of their own so the sets never clash), two tests per module; every
test inserts a row and reads it back inside a transaction rolled back.

* ours -- an ``SSotAsyncTestCase`` class per module with ``metadata = ...``
  and ``isolation = "rollback"``, run with ``python -m pytest -q`` (the
  framework's plugin is registered by its entry point). The first set
  builds a schema template and clones it; the other two create their tables
  in that same database.
* theirs -- plain pytest without the framework's plugin
  (``-p no:test_framework``; pytest-asyncio is not used): a
  session-scoped event loop and engine made by hand in ``conftest.py``, one
  database for the run (PostgreSQL: created and dropped through an
  AUTOCOMMIT connection to ``postgres``; SQLite: a temporary file), a
  module-scoped fixture doing ``create_all``/``drop_all``, and each test in a
  transaction rolled back.

The parent times each whole command, process start to exit. Ours runs cold
(its templates dropped, an empty SQLite cache folder: see
``startup.make_cold``) and then warm; theirs has nothing to keep, so it runs
once per repeat, first in odd repeats and last in even ones, so drift
favours neither. The templates are counted from outside (server or cache
folder) around each of our runs: a cold run must build exactly one (the sets
share one database) and a warm run none, or the row fails.
"""
import shutil
import sys

from . import harness
from .scenarios import MODELS_DB
from .startup import TEMPLATE_PREFIX, make_cold

GROUP = "model-sets"
SETS = ("a", "b", "c")
TESTS_PER_SET = 2
N_TESTS = len(SETS) * TESTS_PER_SET
# The framework's plugin stays out of the suite written without it.
PYTEST_ARGS = {"ours": [], "theirs": ["-p", "no:test_framework"]}
PYTEST_INI = "[pytest]\n"  # pins pytest's rootdir to the suite folder
KINDS = ("ours_cold", "ours_warm", "theirs")  # the three timed runs of a repeat

SCHEMA = '''MODELS = MetaData()
CUSTOMERS = Table("customers_{s}", MODELS,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False))
Table("orders_{s}", MODELS,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers_{s}.id"), nullable=False,
           index=True),
    Column("total", Numeric(10, 2)))
Table("notes_{s}", MODELS,
    Column("id", Integer, primary_key=True),
    Column("order_id", Integer, ForeignKey("orders_{s}.id"), index=True),
    Column("body", Text))
'''
IMPORTS = ("from sqlalchemy import (Column, ForeignKey, Integer, MetaData, Numeric, String,"
           " Table, Text,\n                        insert, select)\n")

OURS_MODULE = IMPORTS + '''
from test_framework import SSotAsyncTestCase

{schema}

class TestModelSet{S}(SSotAsyncTestCase):
    metadata = MODELS
    isolation = "rollback"
{tests}'''
OURS_TEST = '''
    async def test_{i}(self):
        row = await self.db.create("customers_{s}", {{"name": "{s}{i}"}})
        back = await self.db.fetch_one(select(CUSTOMERS).where(CUSTOMERS.c.id == row.id))
        assert back.name == "{s}{i}"
'''

THEIRS_CONFTEST = '''"""One loop, one engine and one database for the run, made by hand."""
import asyncio
import os
import tempfile

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

URL = os.environ.get("BENCH_THEIRS_URL")  # a PostgreSQL database to create; unset: SQLite


@pytest.fixture(scope="session")
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


async def admin(url, *statements):
    engine = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def database_url(loop):
    if URL is None:
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite+aiosqlite:///{folder}/test.sqlite3"
        return
    url = make_url(URL)
    name = url.database
    loop.run_until_complete(admin(url, f'DROP DATABASE IF EXISTS "{name}"',
                                  f'CREATE DATABASE "{name}"'))
    yield url
    loop.run_until_complete(admin(url, f'DROP DATABASE "{name}"'))


@pytest.fixture(scope="session")
def engine(loop, database_url):
    engine = create_async_engine(database_url)
    yield engine
    loop.run_until_complete(engine.dispose())


@pytest.fixture
def connection(loop, engine):
    conn = loop.run_until_complete(engine.connect())
    transaction = loop.run_until_complete(conn.begin())
    yield conn
    loop.run_until_complete(transaction.rollback())
    loop.run_until_complete(conn.close())
'''
THEIRS_MODULE = 'import pytest\n' + IMPORTS + '''
{schema}

async def ddl(engine, action):
    async with engine.begin() as conn:
        await conn.run_sync(action)


@pytest.fixture(scope="module", autouse=True)
def tables(loop, engine):
    loop.run_until_complete(ddl(engine, MODELS.create_all))
    yield
    loop.run_until_complete(ddl(engine, MODELS.drop_all))
{tests}'''
THEIRS_TEST = '''

def test_{i}(loop, connection):
    async def body():
        result = await connection.execute(insert(CUSTOMERS).values(name="{s}{i}"))
        new_id = result.inserted_primary_key[0]
        back = (await connection.execute(
            select(CUSTOMERS).where(CUSTOMERS.c.id == new_id))).one()
        assert back.name == "{s}{i}"
    loop.run_until_complete(body())
'''
SOURCES = {"ours": (OURS_MODULE, OURS_TEST, {}),
           "theirs": (THEIRS_MODULE, THEIRS_TEST, {"conftest.py": THEIRS_CONFTEST})}


def write_suite(side, directory):
    """Write one side's suite (``ours`` or ``theirs``) into ``directory``."""
    module, test, extra = SOURCES[side]
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in dict(extra, **{"pytest.ini": PYTEST_INI}).items():
        (directory / name).write_text(text)
    for s in SETS:
        tests = "".join(test.format(i=i, s=s) for i in range(1, TESTS_PER_SET + 1))
        source = module.format(schema=SCHEMA.format(s=s), S=s.upper(), tests=tests)
        (directory / f"test_models_{s}.py").write_text(source)
    return directory


def warm_up(bench, row):
    """Run both suites once, untimed: imports and files come from a warm page cache."""
    for side in PYTEST_ARGS:
        run_pytest(bench, row, side, "warm-up, untimed")


def measure(bench, row, repeat):
    """Time theirs once, and ours cold then warm; theirs alternates first and last."""
    label = f"repeat {repeat}/{bench.options.repeats}"
    cache_dir = make_cold(bench, row)
    try:
        theirs = run_pytest(bench, row, "theirs", label) if repeat % 2 else None
        cold, cold_built = _run_ours(bench, row, f"cold, {label}", cache_dir)
        warm, warm_built = _run_ours(bench, row, f"warm, {label}", cache_dir)
        if theirs is None:
            theirs = run_pytest(bench, row, "theirs", label)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    if [cold_built, warm_built] != [1, 0]:
        raise harness.RowFailed(
            f"the cold run built {cold_built} template(s) and the warm run {warm_built}, "
            "expected 1 and 0: the model sets did not share one database, or cold or "
            "warm is not what it claims")
    return {"ours_cold_s": cold, "ours_warm_s": warm, "theirs_s": theirs,
            "cold_over_theirs": cold / theirs, "warm_over_theirs": warm / theirs,
            "templates_built": [cold_built, warm_built]}


def _run_ours(bench, row, label, cache_dir):
    """Run our suite; return its wall seconds and how many templates it built."""
    before = _templates(bench, row, cache_dir)
    seconds = run_pytest(bench, row, "ours", label, cache_dir=cache_dir)
    return seconds, len(_templates(bench, row, cache_dir) - before)


def _templates(bench, row, cache_dir):
    """The row's schema templates: on the server, or files in its SQLite cache folder."""
    if row.scenario.postgres:
        return {name for name in bench.admin.derived_from(MODELS_DB)
                if name.startswith(TEMPLATE_PREFIX)}
    return {path.name for path in cache_dir.rglob(f"{TEMPLATE_PREFIX}*.sqlite3")}


def run_pytest(bench, row, side, label, *, cache_dir=None):
    """Run one side's suite with ``python -m pytest -q``; return its wall seconds."""
    directory = bench.tmp / row.scenario.key / side
    if not directory.exists():
        write_suite(side, directory)
    bench.progress(f"{row.scenario.key} {side} N={N_TESTS} ({label})")
    cmd = [sys.executable, "-m", "pytest", "-q", *PYTEST_ARGS[side]]
    env = bench.env_for(row, directory, cache_dir=cache_dir)
    try:
        seconds, proc = harness.run_timed(cmd, env, directory, bench.timeout_for(N_TESTS))
    finally:
        _drop_leftovers(bench, row)
    _check(proc)
    bench.progress(f"  {seconds:.2f}s wall")
    return seconds


def _drop_leftovers(bench, row):
    """Drop our clones and theirs' database if the run left them (a warning on the row)."""
    if not row.scenario.postgres:
        return
    try:
        clones = [name for name in bench.admin.derived_from(MODELS_DB)
                  if not name.startswith(TEMPLATE_PREFIX)]
    except Exception as exc:  # server gone: the row fails on its own error
        bench.progress(f"  could not check for leftover databases: {exc}")
        return
    bench.drop_leftovers(row, clones)  # also drops the scenario's leftover_dbs


def _check(proc):
    """Fail the row unless pytest exited 0 having passed every test."""
    last = (proc.stdout.strip().splitlines() or ["no output"])[-1]
    if proc.returncode == 0 and last.startswith(f"{N_TESTS} passed"):
        return
    failure = [" ".join(line.split()) for line in proc.stdout.splitlines()
               if line.startswith("E ")][:1]
    raise harness.RowFailed(f"pytest exited {proc.returncode}: "
                            + " | ".join(failure + [last] + proc.stderr.strip().splitlines()[-1:]))


def summary(row):
    """The row's JSON fields: medians of each run kind and our cold/warm over theirs."""
    runs = row.runs
    ms = {kind: harness.summarise([1000 * r[f"{kind}_s"] for r in runs])
          for kind in KINDS}
    return {"n_tests": N_TESTS, "model_sets": len(SETS),
            **{f"{kind}_ms": value for kind, value in ms.items()},
            "cold_over_theirs": harness.median_ratio(ms["ours_cold"], ms["theirs"]),
            "warm_over_theirs": harness.median_ratio(ms["ours_warm"], ms["theirs"]),
            **{f"{kind}_over_theirs_per_repeat": harness.summarise(
                [r[f"{kind}_over_theirs"] for r in runs]) for kind in ("cold", "warm")},
            "templates_built": runs[-1]["templates_built"] if runs else None,
            "runs": runs}


RATIOS = ("cold_over_theirs", "warm_over_theirs")


def _ratio_cell(value):
    return f"{'-':>7}" if value is None else f"{value:>7.2f}"


def table_lines(rows):
    """Lay out ours cold, ours warm and theirs (median, min, max), both ratios and the
    templates our cold/warm runs built ("cold" and "warm" columns are ours)."""
    if not rows:
        return []
    cells = ("median", "min", "max")
    kinds = ("cold",) * 3 + ("warm",) * 3 + ("theirs",) * 3
    lines = [f"{f'model sets: run of {N_TESTS} tests, ms':<42} {'runner':<8} "
             + " ".join(f"{head:>7}" for head in kinds) + f" {'cold/':>7} {'warm/':>7} {'tpl':>5}",
             f"{'':<42} {'':<8} " + " ".join(f"{head:>7}" for head in cells * 3)
             + f" {'theirs':>7} {'theirs':>7} {'c/w':>5}"]
    lines.append("-" * len(lines[0]))
    for r in rows:
        head = f"{r['title'][:42]:<42} {r['runner']:<8} "
        if r["status"] != "ok":
            lines.append(head + "FAILED: " + (r["error"] or "no measurement"))
            continue
        numbers = [r[f"{kind}_ms"][cell] for kind in KINDS for cell in cells]
        built = "/".join(map(str, r["templates_built"]))
        lines.append(head + " ".join(f"{n:>7.0f}" for n in numbers)
                     + "".join(f" {_ratio_cell(r[key])}" for key in RATIOS) + f" {built:>5}")
        lines.extend(f"{'':<4}note: {w}" for w in r["warnings"])
    return lines
