"""A shared server: slow builds, busy templates and other roles do not fail whole runs."""

import asyncio
import logging
import secrets
import unittest

from sqlalchemy import Column, Integer, MetaData, Table, text
from sqlalchemy.engine import make_url

from test_framework.backends import backend_for
from test_framework.config import Setting, Timeouts, project_settings
from test_framework.errors import DatabaseUnavailableError
from test_framework.provision import drop_database, provisioned_database
from test_framework.provision.schema import MetadataSchema
from test_framework.provision.templates import template_name
from tests.support import postgres_url_from_env, separate_connection, skip_unless_backend


def fresh_schema() -> MetadataSchema:
    metadata = MetaData()
    Table(f"shared_{secrets.token_hex(4)}", metadata, Column("id", Integer, primary_key=True))
    return MetadataSchema(metadata)


class TestLockWaits(unittest.TestCase):
    def test_waiter_outlasts_lock_timeout_while_the_holder_lives(self):
        """A build longer than lock_timeout must not fail the runs waiting for it."""
        backend = backend_for(project_settings().database_url,
                              timeouts=Timeouts(lock=0.5, statement=5))
        key = f"test_framework:test:{secrets.token_hex(4)}"
        order = []

        async def holder(held: asyncio.Event):
            async with backend.exclusive(key):
                held.set()
                await asyncio.sleep(2)  # four lock timeouts
                order.append("holder done")

        async def waiter(held: asyncio.Event):
            await held.wait()
            async with backend.exclusive(key):
                order.append("waiter in")

        async def both():
            held = asyncio.Event()
            async with asyncio.timeout(60):
                await asyncio.gather(holder(held), waiter(held))

        asyncio.run(both())
        self.assertEqual(order, ["holder done", "waiter in"])


@skip_unless_backend("postgresql")
class TestBusyTemplate(unittest.TestCase):
    def test_outside_session_on_the_template_falls_back_to_a_fresh_build(self):
        backend = backend_for(project_settings().database_url)
        schema = fresh_schema()
        table = next(iter(schema.metadata.tables))

        async def scenario():
            first = await provisioned_database(backend, schema, private=True)
            await drop_database(first)
            template = backend.database_url(template_name(backend, schema), kept=True)
            try:
                async with separate_connection(template):  # someone's psql on the template
                    second = await provisioned_database(backend, schema, private=True)
                try:
                    async with separate_connection(second.url) as connection:
                        return await connection.run_sync(
                            lambda sync: sync.dialect.has_table(sync, table))
                finally:
                    await drop_database(second)
            finally:
                await backend.drop_database(template)

        with self.assertLogs("test_framework.provision", logging.WARNING) as logs:
            self.assertTrue(asyncio.run(scenario()), "the run still got its schema")
        warning = "\n".join(logs.output)
        self.assertIn("is in use by other sessions (pid ", warning)
        self.assertIn("building the schema directly", warning)


@skip_unless_backend("postgresql")
class TestOtherRoles(unittest.TestCase):
    """Roles other than the one that built a template, on the same server."""

    def setUp(self):
        self.server = make_url(postgres_url_from_env())
        self.role = f"tf_role_{secrets.token_hex(3)}"
        self.admin = self.server.set(database="postgres")
        self.addCleanup(lambda: asyncio.run(self.execute(f'DROP ROLE IF EXISTS "{self.role}"')))

    async def execute(self, statement: str):
        async with separate_connection(self.admin) as connection:
            await connection.execute(text(statement))

    def backend_as_role(self):
        url = self.server.set(username=self.role, password=None)
        return backend_for(Setting(url.render_as_string(hide_password=False), "test"))

    def test_role_that_may_create_databases_clones_anothers_template(self):
        asyncio.run(self.execute(f'CREATE ROLE "{self.role}" LOGIN CREATEDB'))
        schema = fresh_schema()
        owner, other = backend_for(project_settings().database_url), self.backend_as_role()

        async def scenario():
            built = await provisioned_database(owner, schema, private=True)
            await drop_database(built)
            template = owner.database_url(template_name(owner, schema), kept=True)
            try:
                cloned = await provisioned_database(other, schema, private=True)
                await drop_database(cloned)
                return cloned.url.database
            finally:
                await owner.drop_database(template)

        self.assertTrue(asyncio.run(scenario()).startswith("test_"))

    def test_role_that_may_not_create_databases_is_told_the_grant(self):
        asyncio.run(self.execute(f'CREATE ROLE "{self.role}" LOGIN'))
        other = self.backend_as_role()
        with self.assertRaises(DatabaseUnavailableError) as caught:
            asyncio.run(provisioned_database(other, None, private=True))
        message = str(caught.exception)
        self.assertIn(f'ALTER ROLE "{self.role}" CREATEDB', message)
        self.assertIn(f'CREATE DATABASE "test_app" OWNER "{self.role}"', message)
        self.assertNotIn("check that PostgreSQL is running", message)
