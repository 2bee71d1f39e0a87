"""Templates: built once per schema version, reused, replaced when the schema changes,
and never built twice or cloned half-built when processes start together."""

import asyncio
import os
import secrets
import subprocess
import sys
import unittest
from pathlib import Path

from sqlalchemy import inspect as sa_inspect

from test_framework.backends import backend_for
from test_framework.config import project_settings
from test_framework.provision.templates import TEMPLATE_PREFIX
from tests.support import separate_connection

ROOT = Path(__file__).resolve().parents[2]


def start_child(table: str, *extra: str, prefix: list[str] = ()) -> subprocess.Popen:
    env = dict(os.environ, TEST_FRAMEWORK_LOG_LEVEL="INFO")
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
        """Only templates of this test's own schema (other runs may build theirs now)."""
        from tests.provision.child import schema
        identities = {schema(self.table, extra).identity[:6] for extra in (False, True)}
        return any(f"_{identity}_" in name for identity in identities)

    async def template_names(self) -> set[str]:
        return {r.name for r in await self.backend.list_databases()
                if r.name.startswith(TEMPLATE_PREFIX)}


class TestTemplates(DropsNewTemplates):
    def test_second_run_reuses_the_template_and_a_change_replaces_it(self):
        before = asyncio.run(self.template_names())
        _, first = finish(start_child(self.table))
        _, second = finish(start_child(self.table))
        self.assertEqual((templates_built(first), templates_built(second)), (1, 0))
        built = {n for n in asyncio.run(self.template_names()) - before if self.table_family(n)}
        out, third = finish(start_child(self.table, "--extra-column"))
        after = {n for n in asyncio.run(self.template_names()) - before if self.table_family(n)}
        self.assertEqual(templates_built(third), 1)
        self.assertEqual(len(built), 1)
        self.assertEqual(len(after), 1, "the stale template was removed")
        self.assertNotEqual(built, after)
        template_url = self.backend.database_url(after.pop(), kept=True)
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


class TestTemplateCap(unittest.TestCase):
    def test_only_the_newest_templates_per_database_name_are_kept(self):
        from sqlalchemy.engine import make_url
        from test_framework.config import Setting
        from test_framework.provision.templates import MAX_TEMPLATES, ensure_template
        from tests.provision.child import schema
        url = make_url(project_settings().database_url.value or "sqlite+aiosqlite:///x.db")
        url = url.set(database="captest.db" if url.get_backend_name() == "sqlite" else "captest")
        backend = backend_for(Setting(url.render_as_string(hide_password=False), "test"))

        async def build_many():
            built = []
            for n in range(MAX_TEMPLATES + 2):
                template = await ensure_template(backend, schema(f"cap_{secrets.token_hex(3)}", False))
                built.append(backend.database_name(template))
                await asyncio.sleep(1.01 if n == MAX_TEMPLATES else 0)  # distinct build times
            return built

        async def ours():
            return sorted(r.name for r in await backend.list_databases()
                          if r.name.startswith(f"{TEMPLATE_PREFIX}captest_"))

        async def drop_ours():
            for record in await backend.list_databases():
                if record.name.startswith(f"{TEMPLATE_PREFIX}captest_"):
                    await backend.drop_database(record.url)

        self.addCleanup(lambda: asyncio.run(drop_ours()))
        built = asyncio.run(build_many())
        remaining = asyncio.run(ours())
        self.assertLessEqual(len(remaining), MAX_TEMPLATES)
        self.assertIn(built[-1], remaining, "the newest template stays")


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
