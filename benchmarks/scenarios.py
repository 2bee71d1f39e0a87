"""What each benchmark row generates and how it is run.

Every row is a generated suite of N tests split into classes of
``TESTS_PER_CLASS`` so per-class costs (event loop, connection, schema) are
amortised as in a real suite.  Every test does the same work within a group
-- the floors do nothing, the database rows insert one row and read it back
-- so the rows differ only in the machinery around the test body.

Three more groups are not per-test slopes and get tables of their own:
``startup`` rows run one trivial test against a 20-table schema, cold (no
schema template yet) and warm; ``parallel`` rows run one database-bound
suite under nose2 serially and with ``-N 2``; ``model-sets`` rows time whole
pytest runs of a 3-model-set suite against the same suite's create_all
fixtures (``model_sets``).
"""
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import recipe

TESTS_PER_CLASS = 100
REFERENCE_KEY = "ours-rollback-pg"
DJANGO_TEST_DB = f"test_bench_django_{os.environ.setdefault('BENCH_RUN', str(os.getpid()))}"

FLOOR_SYNC_HEAD = "import unittest\n"
FLOOR_SYNC_CLASS = "\n\nclass TestFloor{c:03d}(unittest.TestCase):\n"
FLOOR_SYNC_TEST = "    def test_{i:05d}(self):\n        pass\n"

FLOOR_ASYNC_HEAD = "import unittest\n"
FLOOR_ASYNC_CLASS = "\n\nclass TestFloor{c:03d}(unittest.IsolatedAsyncioTestCase):\n"
FLOOR_ASYNC_TEST = "    async def test_{i:05d}(self):\n        pass\n"

NAIVE_HEAD = '''import os
import unittest

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

URL = os.environ["BENCH_NAIVE_URL"]


async def roundtrip(email):
    engine = create_async_engine(URL)
    try:
        async with engine.connect() as conn:
            trans = await conn.begin()
            new_id = (await conn.execute(
                text("INSERT INTO items (name) VALUES (:n) RETURNING id"), {{"n": email}})).scalar_one()
            row = (await conn.execute(
                text("SELECT id, name FROM items WHERE id = :id"), {{"id": new_id}})).one()
            assert row.name == email
            await trans.rollback()
    finally:
        await engine.dispose()
'''
NAIVE_CLASS = "\n\nclass TestNaive{c:03d}(unittest.IsolatedAsyncioTestCase):\n"
NAIVE_TEST = ('    async def test_{i:05d}(self):\n'
              '        await roundtrip("u{i}@example.com")\n')

DJANGO_MODELS = '''from django.db import models


class Item(models.Model):
    name = models.CharField(max_length=200)

    class Meta:
        app_label = "benchapp"
'''
DJANGO_HEAD = "from django.test import {base}\n\nfrom benchapp.models import Item\n"
DJANGO_CLASS = "\n\nclass TestDjango{c:03d}({base}):\n"
DJANGO_TEST = '''    def test_{i:05d}(self):
        item = Item.objects.create(name="u{i}@example.com")
        row = Item.objects.values("id", "name").get(pk=item.pk)
        assert row["name"] == "u{i}@example.com"
'''

OURS_HEAD = ("from datetime import datetime, timezone\n\n"
             "from test_framework import SSotAsyncTestCase\n")
OURS_CLASS = '\n\nclass TestOurs{c:03d}(SSotAsyncTestCase):\n    isolation = "{isolation}"\n\n'
OURS_TEST = '''    async def test_{i:05d}(self):
        user = await self.db.create_test_user({{
            "email": "u{i}@example.com", "full_name": "U", "password_hash": "h",
            "is_active": True, "created_at": datetime.now(timezone.utc)}})
        row = await self.db.fetch_one(
            "SELECT id, email FROM users WHERE id = :id", {{"id": user.id}})
        assert row.email == "u{i}@example.com"
'''

# The lazy row: a class of ours whose tests never use the database, beside the
# empty stdlib async test: no database, connection or rollback is made for it.
NO_DATABASE_TEST = "    async def test_{i:05d}(self):\n        assert {i} > 0\n"

# Gathered rows: the application gathers three calls, each with a session of its
# own, so sessions take turns on the rollback connection (ssot/session_tasks.py).
GATHER_HEAD = '''import asyncio

from sqlalchemy import text

from test_framework import SSotAsyncTestCase

INSERT = text("INSERT INTO users (email, full_name, password_hash, is_active) "
              "VALUES (:e, 'U', 'h', true)")


async def signup(factory, email):
    async with factory() as session:
        await session.execute(INSERT, {{"e": email}})
        await session.commit()
'''
GATHER_TEST = '''    async def test_{i:05d}(self):
        await asyncio.gather(*(signup(self.session_factory, f"u{i}-{{n}}@example.com")
                               for n in range(3)))
        assert await self.db.count_records("users") == 3
'''

# Start-up rows: one test, so the run is all provisioning (template, clone).
STARTUP_TABLES = 20
STARTUP_HEAD = ('from sqlalchemy import (Column, DateTime, ForeignKey, Integer, MetaData, '
                'Numeric,\n                        String, Table)\n\n'
                'from test_framework import SSotAsyncTestCase\n\n{schema}')
STARTUP_CLASS = "\n\nclass TestStartup{c:03d}(SSotAsyncTestCase):\n    metadata = SCHEMA\n\n"
STARTUP_TEST = ('    async def test_{i:05d}(self):\n'
                '        assert await self.db.count_records("table_00") == 0\n')

# Parallel rows: the reference body plus an aggregate the server computes
# (about a millisecond), so database work, not the runner, dominates a test.
PARALLEL_TEST = OURS_TEST + '''        total = await self.db.fetch_one(
            "SELECT count(*) AS n FROM generate_series(1, 20000) AS g")
        assert total.n == 20000
'''
NOSE2_PLUGINS = {"serial": "test_framework.nose2_plugin",
                 "parallel": "nose2.plugins.mp\n          test_framework.nose2_plugin"}
NOSE2_CONFIG = "[unittest]\nplugins = {plugins}\n\n[test-framework]\nalways-on = True\n"


def wide_schema_source(n_tables):
    """Write the Python source of ``SCHEMA``, a MetaData of ``n_tables`` tables.

    A few columns each, and every odd table references the one before it
    through an indexed foreign key, so the template build runs the kinds of
    DDL a real schema has (tables, constraints, indexes), not just tables.
    """
    tables = []
    for i in range(n_tables):
        parent = (f'\n    Column("parent_id", Integer, ForeignKey("table_{i - 1:02d}.id"), '
                  'index=True),' if i % 2 else "")
        tables.append(f'Table("table_{i:02d}", SCHEMA,\n'
                      '    Column("id", Integer, primary_key=True),\n'
                      '    Column("name", String(100), nullable=False),\n'
                      '    Column("amount", Numeric(10, 2)),\n'
                      f'    Column("created_at", DateTime(timezone=True)),{parent}\n)\n')
    return "SCHEMA = MetaData()\n\n" + "\n".join(tables)


@dataclass(frozen=True)
class Template:
    """Source fragments for one generated module per test class."""

    head: str          # all three are str.format templates: double literal braces
    cls: str
    test: str
    extra_files: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    """One table row: what to generate, which runner, which environment."""

    key: str
    title: str
    runner: str                       # unittest | nose2 | pytest | django
    template: Template | None         # None: the group's module writes its own suites
    fmt: dict = field(default_factory=dict)
    env: Callable[["Context"], dict] = lambda ctx: {}
    postgres: bool = False            # needs the server; counts connections
    in_quick: bool = True
    leftover_dbs: tuple = ()          # names the parent checks for after a run
    setup_dbs: tuple = ()             # keys of SETUP_DBS created before timing
    group: str = "per-test"           # per-test | startup | parallel | model-sets
    tests_per_class: int = TESTS_PER_CLASS
    baseline: str = ""                # key of the row this one is a ratio to (per-class rows)


@dataclass(frozen=True)
class Context:
    """Run-wide settings the scenarios' environments are built from."""

    pg_user: str
    pg_host: str
    pg_port: int

    def url(self, database, driver="postgresql+asyncpg"):
        return f"{driver}://{self.pg_user}@{self.pg_host}:{self.pg_port}/{database}"


# Every database name carries this run's number, so two benchmark runs on one server
# (CI's quick run beside a full one) never create or drop each other's databases.
RUN = os.environ.setdefault("BENCH_RUN", str(os.getpid()))
NAIVE_DB = f"bench_naive_{RUN}"
OURS_DB = f"bench_ours_{RUN}"
STARTUP_DB = f"bench_startup_{RUN}"    # own name: cold runs drop its templates, no one else's
PARALLEL_DB = f"bench_parallel_{RUN}"
MODELS_DB = f"bench_models_{RUN}"      # own name too: cold runs drop its templates
MODELS_THEIRS_DB = f"bench_models_theirs_{RUN}"  # made and dropped by the create_all suite
# Databases the parent creates before timing (name -> SQL run inside it).  The
# library is pointed at OURS_DB's server and makes its own throwaway database;
# OURS_DB exists so the URL names a real database whatever the library does.
SETUP_DBS = {NAIVE_DB: "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)",
             OURS_DB: None, STARTUP_DB: None, PARALLEL_DB: None, MODELS_DB: None,
             recipe.RECIPE_DB: None}


def _ours_pg_env(ctx):
    return {"TEST_DATABASE_URL": ctx.url(OURS_DB)}


def _sqlite_env(ctx):
    return {"TEST_DATABASE_URL": None}


def _sqlite_aiosqlite_env(ctx):
    """Rollback mode's engine on aiosqlite, as before the inline driver (its "before")."""
    return dict(_sqlite_env(ctx), TEST_FRAMEWORK_SQLITE_DRIVER="aiosqlite")


def _django_pg_database(ctx):
    return {"ENGINE": "django.db.backends.postgresql", "NAME": f"bench_django_{RUN}",
            "USER": ctx.pg_user, "HOST": ctx.pg_host, "PORT": str(ctx.pg_port),
            "TEST": {"NAME": DJANGO_TEST_DB}}


def _ours(key, title, runner, isolation, env, postgres):
    return Scenario(key, title, runner, Template(OURS_HEAD, OURS_CLASS, OURS_TEST),
                    {"isolation": isolation}, env, postgres,
                    setup_dbs=(OURS_DB,) if postgres else ())


# Deferrable rows: the reference suite on the sample schema plus a table whose foreign
# key is DEFERRABLE INITIALLY DEFERRED, so rollback mode checks deferred constraints
# before each rollback; with the check on and off side by side, its cost per test.
DEFERRABLE_HEAD = OURS_HEAD + '''from sqlalchemy import Column, ForeignKey, Integer, MetaData, Table
from test_framework import sample_schema

SCHEMA = MetaData()
for _table in sample_schema.metadata.tables.values():
    _table.to_metadata(SCHEMA)
Table("notes", SCHEMA, Column("id", Integer, primary_key=True),
      Column("user_id", Integer, ForeignKey("users.id", deferrable=True, initially="DEFERRED")))
'''
DEFERRABLE_CLASS = OURS_CLASS.rstrip("\n") + "\n    metadata = SCHEMA\n{check}\n"
CHECK_OFF = "    check_deferred_constraints = False\n"


def _deferrable(key, title, env, postgres, *, check):
    return Scenario(key, title, "unittest",
                    Template(DEFERRABLE_HEAD, DEFERRABLE_CLASS, OURS_TEST),
                    {"isolation": "rollback", "check": "" if check else CHECK_OFF}, env,
                    postgres, setup_dbs=(OURS_DB,) if postgres else ())


def _gathered(key, title, env, postgres):
    return Scenario(key, title, "unittest", Template(GATHER_HEAD, OURS_CLASS, GATHER_TEST),
                    {"isolation": "rollback"}, env, postgres,
                    setup_dbs=(OURS_DB,) if postgres else ())


def _logged(env):
    """Add INFO logging to ``env``: the "built template" and "created test
    database" lines let the parent check a cold run was cold and count databases."""
    return lambda ctx: dict(env(ctx), TEST_FRAMEWORK_LOG_LEVEL="INFO")


def _startup(key, title, postgres):
    template = Template(STARTUP_HEAD, STARTUP_CLASS, STARTUP_TEST)
    env = (lambda ctx: {"TEST_DATABASE_URL": ctx.url(STARTUP_DB)}) if postgres else _sqlite_env
    return Scenario(key, title, "unittest", template,
                    {"schema": wide_schema_source(STARTUP_TABLES)}, _logged(env), postgres,
                    setup_dbs=(STARTUP_DB,) if postgres else (), group="startup")


def _parallel(key, title):
    files = {f"nose2-{mode}.cfg": NOSE2_CONFIG.format(plugins=plugins)
             for mode, plugins in NOSE2_PLUGINS.items()}
    template = Template(OURS_HEAD, OURS_CLASS, PARALLEL_TEST, files)
    env = _logged(lambda ctx: {"TEST_DATABASE_URL": ctx.url(PARALLEL_DB)})
    return Scenario(key, title, "nose2", template, {"isolation": "rollback"}, env,
                    postgres=True, setup_dbs=(PARALLEL_DB,), group="parallel")


def _model_sets(key, title, postgres):
    """A 3-model-set suite, ours and theirs (see ``model_sets``); both read one env."""
    def env(ctx):
        if not postgres:
            return {"TEST_DATABASE_URL": None, "BENCH_THEIRS_URL": None}
        return {"TEST_DATABASE_URL": ctx.url(MODELS_DB),
                "BENCH_THEIRS_URL": ctx.url(MODELS_THEIRS_DB)}
    return Scenario(key, title, "pytest", None, env=env, postgres=postgres,
                    leftover_dbs=(MODELS_THEIRS_DB,) if postgres else (),
                    setup_dbs=(MODELS_DB,) if postgres else (), group="model-sets")


def _django(key, title, base, database=_django_pg_database, postgres=True):
    template = Template(DJANGO_HEAD, DJANGO_CLASS, DJANGO_TEST,
                        {"benchapp/__init__.py": "", "benchapp/models.py": DJANGO_MODELS})
    env = lambda ctx: {"BENCH_DJANGO_DATABASE": json.dumps(database(ctx))}  # noqa: E731
    return Scenario(key, title, "django", template, {"base": base}, env, postgres=postgres,
                    in_quick=False, leftover_dbs=(DJANGO_TEST_DB,) if postgres else ())


def _recipe(key, title, postgres):
    """The pytest-asyncio recipe users write instead of the framework (``recipe``)."""
    template = Template(recipe.RECIPE_HEAD, recipe.RECIPE_CLASS, recipe.RECIPE_TEST,
                        recipe.RECIPE_FILES)
    return Scenario(key, title, "pytest", template,
                    env=lambda ctx: recipe.recipe_env(ctx, postgres), postgres=postgres,
                    in_quick=False, setup_dbs=(recipe.RECIPE_DB,) if postgres else ())


# Per-class rows: the reference suite in classes of 10, so the per-class cost
# (loop, connection, class set-up) shows as a ratio to the classes-of-100 row.
SMALL_CLASSES = 10


def _per_class(key, title, baseline, env, postgres):
    return Scenario(key, title, "unittest", Template(OURS_HEAD, OURS_CLASS, OURS_TEST),
                    {"isolation": "rollback"}, env, postgres,
                    setup_dbs=(OURS_DB,) if postgres else (),
                    tests_per_class=SMALL_CLASSES, baseline=baseline)


SCENARIOS = [
    Scenario("floor-testcase", "floor: empty unittest.TestCase", "unittest",
             Template(FLOOR_SYNC_HEAD, FLOOR_SYNC_CLASS, FLOOR_SYNC_TEST)),
    Scenario("floor-asyncio", "floor: empty IsolatedAsyncioTestCase", "unittest",
             Template(FLOOR_ASYNC_HEAD, FLOOR_ASYNC_CLASS, FLOOR_ASYNC_TEST)),
    Scenario("naive-engine-per-test", "naive: async engine per test, PostgreSQL", "unittest",
             Template(NAIVE_HEAD, NAIVE_CLASS, NAIVE_TEST),
             env=lambda ctx: {"BENCH_NAIVE_URL": ctx.url(NAIVE_DB)}, postgres=True,
             setup_dbs=(NAIVE_DB,)),
    _django("django-testcase", "Django TestCase, PostgreSQL", "TestCase"),
    _django("django-transactiontestcase", "Django TransactionTestCase, PostgreSQL",
            "TransactionTestCase"),
    _django("django-testcase-sqlite", "Django TestCase, in-memory SQLite", "TestCase",
            recipe.django_sqlite_database, postgres=False),
    _recipe("pytest-asyncio-recipe-pg", "pytest-asyncio + joined session, PostgreSQL", True),
    _recipe("pytest-asyncio-recipe-sqlite", "pytest-asyncio + joined session, SQLite", False),
    Scenario("ours-no-database", "ours, a class that never uses the database", "unittest",
             Template(OURS_HEAD, OURS_CLASS, NO_DATABASE_TEST), {"isolation": "rollback"},
             _sqlite_env, baseline="floor-asyncio"),
    _ours(REFERENCE_KEY, "ours, rollback, PostgreSQL", "unittest", "rollback",
          _ours_pg_env, True),
    _ours("ours-rollback-sqlite", "ours, rollback, SQLite", "unittest", "rollback",
          _sqlite_env, False),
    _ours("ours-rollback-sqlite-aiosqlite", "  same, on aiosqlite's worker thread", "unittest",
          "rollback", _sqlite_aiosqlite_env, False),
    _per_class("ours-rollback-pg-per-class10",
               f"ours, rollback, classes of {SMALL_CLASSES}, PostgreSQL", REFERENCE_KEY,
               _ours_pg_env, True),
    _per_class("ours-rollback-sqlite-per-class10",
               f"ours, rollback, classes of {SMALL_CLASSES}, SQLite", "ours-rollback-sqlite",
               _sqlite_env, False),
    _deferrable("ours-deferrable-pg", "ours, deferrable FK, PostgreSQL", _ours_pg_env, True,
                check=True),
    _deferrable("ours-deferrable-pg-unchecked", "  same, check_deferred off", _ours_pg_env,
                True, check=False),
    _deferrable("ours-deferrable-sqlite", "ours, deferrable FK, SQLite", _sqlite_env, False,
                check=True),
    _deferrable("ours-deferrable-sqlite-unchecked", "  same, check_deferred off", _sqlite_env,
                False, check=False),
    _ours("ours-commit-pg", "ours, commit, PostgreSQL", "unittest", "commit",
          _ours_pg_env, True),
    _ours("ours-commit-sqlite", "ours, commit, SQLite", "unittest", "commit",
          _sqlite_env, False),
    _ours("ours-rollback-pg-nose2", "ours, rollback, PostgreSQL, nose2", "nose2",
          "rollback", _ours_pg_env, True),
    _ours("ours-rollback-pg-pytest", "ours, rollback, PostgreSQL, pytest", "pytest",
          "rollback", _ours_pg_env, True),
    _gathered("ours-gather3-pg", "ours, rollback, 3 gathered sessions, PostgreSQL",
              _ours_pg_env, True),
    _gathered("ours-gather3-sqlite", "ours, rollback, 3 gathered sessions, SQLite",
              _sqlite_env, False),
    _startup("startup-pg", f"start-up, {STARTUP_TABLES} tables, PostgreSQL", True),
    _startup("startup-sqlite", f"start-up, {STARTUP_TABLES} tables, SQLite", False),
    _parallel("parallel-nose2-pg", "nose2 serial vs -N 2, PostgreSQL"),
    _model_sets("model-sets-pg", "3 model sets, 6 tests, PostgreSQL", True),
    _model_sets("model-sets-sqlite", "3 model sets, 6 tests, SQLite", False),
]

MEMORY_SCENARIOS = [
    ("floor-asyncio", "memory: empty IsolatedAsyncioTestCase"),
    (REFERENCE_KEY, "memory: ours, rollback, PostgreSQL"),
]


def by_key(key):
    for scenario in SCENARIOS:
        if scenario.key == key:
            return scenario
    raise KeyError(key)


def generate(scenario, n_tests, directory):
    """Write ``n_tests`` tests as one module per class under ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tpl, per_class = scenario.template, scenario.tests_per_class
    for rel, text in tpl.extra_files.items():
        (directory / rel).parent.mkdir(parents=True, exist_ok=True)
        (directory / rel).write_text(text)
    for c, start in enumerate(range(0, n_tests, per_class)):
        parts = [tpl.head.format(**scenario.fmt), tpl.cls.format(c=c, **scenario.fmt)]
        for i in range(start + 1, min(start + per_class, n_tests) + 1):
            parts.append(("\n" if i > start + 1 else "") + tpl.test.format(i=i, **scenario.fmt))
        (directory / f"test_bench_{c:03d}.py").write_text("".join(parts))
    return directory


def child_env(scenario, ctx, repo_root, suite_dir, cache_dir):
    """The child's environment: the repo importable, no user settings.

    TEST_FRAMEWORK_* variables (debug mode, kept databases, timing) would
    change what is measured, so they are dropped.  XDG_CACHE_HOME points at
    the benchmark's own folder so SQLite schema templates are private to this
    benchmark run (warm after the warm-up, gone afterwards) and the user's
    cache is neither used nor touched.
    """
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TEST_FRAMEWORK_", "PYTHONASYNCIODEBUG", "DJANGO_"))}
    env.pop("TEST_DATABASE_URL", None)
    env["PYTHONPATH"] = os.pathsep.join([str(suite_dir), str(repo_root)])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["XDG_CACHE_HOME"] = str(cache_dir)
    for name, value in scenario.env(ctx).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env
