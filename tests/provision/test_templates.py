"""Templates: built once per schema version, reused, replaced when the schema changes,
and never built twice or cloned half-built when processes start together."""

import asyncio
import os
import secrets
import subprocess
import sys
import time
import unittest
from pathlib import Path

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import make_url

from test_framework.backends import backend_for
from test_framework.config import Setting, project_settings
from test_framework.provision.templates import TEMPLATE_PREFIX
from tests.support import separate_connection

ROOT = Path(__file__).resolve().parents[2]


def start_child(table: str, *extra: str, prefix: list[str] = (),
                url: str | None = None) -> subprocess.Popen:
    env = dict(os.environ, TEST_FRAMEWORK_LOG_LEVEL="INFO")
    if url is not None:
        env["TEST_DATABASE_URL"] = url
    return subprocess.Popen([*prefix, sys.executable, "-m", "tests.provision.child", table,
                             *extra],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(process: subprocess.Popen) -> tuple[str, str]:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return out, err


def templates_built(stderr: str) -> int:
    return stderr.count("built template")


async def columns_in(url, table: str) -> list[str]:
    async with separate_connection(url) as connection:
        return await connection.run_sync(
            lambda sync: [c["name"] for c in sa_inspect(sync).get_columns(table)])


def private_name_url() -> str:
    """The test database URL with a database name no other test or run uses."""
    url = make_url(project_settings().database_url.value or "sqlite+aiosqlite:///x.db")
    stem = f"tpl{secrets.token_hex(3)}"
    url = url.set(database=f"{stem}.db" if url.get_backend_name() == "sqlite" else stem)
    return url.render_as_string(hide_password=False)


async def drop_named(backend) -> None:
    """Drop every database and template made for ``backend``'s database name."""
    for record in await backend.list_databases():
        if f"_{backend.stem}_" in record.name:
            await backend.drop_database(record.url)


class DropsNewTemplates(unittest.TestCase):
    """Tests that build templates for throwaway schemas remove them afterwards."""

    def setUp(self):
        self.table = f"t_{secrets.token_hex(4)}"
        self.backend = backend_for(project_settings().database_url)
        self.templates_before = asyncio.run(self.template_names())
        self.addCleanup(lambda: asyncio.run(self.drop_new_templates()))

    async def drop_new_templates(self):
        for record in await self.backend.list_databases():
            if record.name.startswith(TEMPLATE_PREFIX) and \
                    record.name not in self.templates_before and self.table_family(record.name):
                await self.backend.drop_database(record.url)

    def table_family(self, name: str) -> bool:
        """Only templates of this test's own schemas (other runs may build theirs now)."""
        from tests.provision.child import schema
        from test_framework.provision.templates import template_name
        return name in {template_name(self.backend, schema(self.table, extra))
                        for extra in (False, True)}

    async def template_names(self) -> set[str]:
        return {r.name for r in await self.backend.list_databases()
                if r.name.startswith(TEMPLATE_PREFIX)}


class TestTemplates(DropsNewTemplates):
    def test_each_schema_keeps_its_template_and_both_start_warm(self):
        """Same table names, other columns (two branches, two model modules): two templates.

        Under a database name of its own: the server keeps at most ``MAX_TEMPLATES``
        per name, least recently used first out, and a suite on this server may fill
        the cap for the project's name with templates used after this test's first.
        """
        url = private_name_url()
        self.backend = backend_for(Setting(url, "test"))  # the family's names use its name
        self.addCleanup(lambda: asyncio.run(drop_named(self.backend)))
        _, first = finish(start_child(self.table, url=url))
        _, second = finish(start_child(self.table, url=url))
        self.assertEqual((templates_built(first), templates_built(second)), (1, 0))
        built = {n for n in asyncio.run(self.template_names()) if self.table_family(n)}
        _, third = finish(start_child(self.table, "--extra-column", url=url))
        after = {n for n in asyncio.run(self.template_names()) if self.table_family(n)}
        self.assertEqual(templates_built(third), 1)
        self.assertEqual(len(built), 1)
        self.assertEqual(len(after), 2, "the other schema's template stays; the third run "
                         "said: " + " | ".join(line for line in third.splitlines()
                                               if "template" in line))
        _, warm_a = finish(start_child(self.table, url=url))
        _, warm_b = finish(start_child(self.table, "--extra-column", url=url))
        self.assertEqual((templates_built(warm_a), templates_built(warm_b)), (0, 0))
        new = (after - built).pop()
        template_url = self.backend.database_url(new, kept=True)
        self.assertIn("extra", asyncio.run(columns_in(template_url, self.table)))

    def test_concurrent_first_starts_build_once_and_all_get_the_schema(self):
        before = asyncio.run(self.template_names())
        children = [start_child(self.table) for _ in range(4)]
        results = [finish(child) for child in children]
        made = {n for n in asyncio.run(self.template_names()) - before if self.table_family(n)}
        self.assertEqual(sum(templates_built(err) for _, err in results), 1)
        self.assertEqual(len(made), 1)
        for out, _ in results:
            tables = out.split("TABLES", 1)[1].split()
            self.assertEqual(tables, [self.table], "each clone has the whole schema")


class TestPruningTouchesOnlyOurs(unittest.TestCase):
    """Stale-template pruning drops only templates labelled for exactly this database name."""

    def setUp(self):
        from sqlalchemy.engine import make_url
        from test_framework.config import Setting
        url = make_url(project_settings().database_url.value or "sqlite+aiosqlite:///x.db")
        stem = f"prune{secrets.token_hex(3)}"
        url = url.set(database=f"{stem}.db" if url.get_backend_name() == "sqlite" else stem)
        self.backend = backend_for(Setting(url.render_as_string(hide_password=False), "test"))
        self.stem = stem
        self.addCleanup(lambda: asyncio.run(self.drop_all()))

    async def drop_all(self):
        for record in await self.backend.list_databases():
            if self.stem in record.name:
                await self.backend.drop_database(record.url)

    async def make(self, name: str, label: str | None):
        await self.backend.create_database(self.backend.database_url(name, kept=True),
                                           label=label)

    async def names(self) -> set[str]:
        return {r.name for r in await self.backend.list_databases() if self.stem in r.name}

    def test_unlabelled_other_projects_and_busy_templates_survive(self):
        from test_framework.provision.ownership import template_label
        from test_framework.provision.templates import remove_stale_templates, template_lock
        family = f"{TEMPLATE_PREFIX}{self.stem}_aaaaaa_"
        keep = f"{family}{'1' * 12}"
        ours_stale, ours_busy = f"{family}{'2' * 12}", f"{family}{'3' * 12}"
        hand_made, other_project = f"{family}mine", f"{TEMPLATE_PREFIX}{self.stem}_v2_x_{'4' * 12}"

        async def scenario():
            await self.make(keep, template_label(self.stem, 3))
            await self.make(ours_stale, template_label(self.stem, 1))
            await self.make(ours_busy, template_label(self.stem, 2))
            await self.make(hand_made, None)
            await self.make(other_project, template_label(f"{self.stem}_v2", 0))
            async with self.backend.shared(template_lock(ours_busy)):  # a run cloning it
                dropped = await remove_stale_templates(self.backend, keep=keep)
            return dropped, await self.names()

        dropped, left = asyncio.run(scenario())
        self.assertEqual(dropped, [ours_stale])
        self.assertEqual(left, {keep, ours_busy, hand_made, other_project})


    def test_templates_go_by_last_use_not_by_count_alone(self):
        from test_framework.provision.ownership import template_label
        from test_framework.provision.templates import remove_stale_templates
        now = time.time()
        names = [f"{TEMPLATE_PREFIX}{self.stem}_aaaaaa_{str(n) * 12}" for n in range(5)]
        ages = [0, 60, 3600, 3 * 86400, 9 * 86400]  # seconds since each was last used

        async def scenario():
            for name, age in zip(names, ages):
                await self.make(name, template_label(self.stem, now - age))
            idle = await remove_stale_templates(self.backend, keep=names[0])
            capped = await remove_stale_templates(self.backend, keep=names[0], cap=3)
            return idle, capped, await self.names()

        idle, capped, left = asyncio.run(scenario())
        self.assertEqual(idle, [names[4]], "unused for more than a week")
        self.assertEqual(capped, [names[3]], "beyond the cap, the least recently used")
        self.assertEqual(left, set(names[:3]))
