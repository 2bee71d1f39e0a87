"""A suite run by a role that may not create databases: it works in a schema of its own."""

from test_framework import SSotAsyncTestCase


class InItsOwnSchema(SSotAsyncTestCase):
    async def test_rows_and_schema(self):
        await self.db.create_test_user({"email": "schema@x.test"})
        self.assertEqual(await self.db.count_records("users"), 1)
        schema = (await self.db.fetch_one("SELECT current_schema() AS s")).s
        self.assertTrue(schema.startswith("test_"), schema)
        print("SCHEMA", schema, flush=True)


class CommitsInItsOwnSchema(SSotAsyncTestCase):
    isolation = "commit"

    async def test_commit_and_cleanup(self):
        await self.db.create_test_user({"email": "commit@x.test"})
        self.assertEqual(await self.db.count_records("users"), 1)
