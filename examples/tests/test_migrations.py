"""The same app, its schema built by its Alembic migrations instead of create_all.

``alembic_ini`` is found beside this file or in a parent folder (here:
examples/alembic.ini), whatever folder the tests run from. ``metadata``
beside it gives the helpers the models' types, and ``check_models`` fails
the run if a model column has no migration.
"""

from test_framework import SSotAsyncTestCase

from app.models import Base


class MigratedSchemaTest(SSotAsyncTestCase):
    alembic_ini = "alembic.ini"
    metadata = Base.metadata
    check_models = True

    async def test_schema_is_at_the_head_revision(self):
        version = await self.db.fetch_one("SELECT version_num FROM alembic_version")
        self.assertEqual(version.version_num, "0001")

    async def test_helpers_work_on_the_migrated_tables(self):
        user = await self.db.create_test_user({"email": "migrated@example.com"})
        thread = await self.db.create_test_thread({"user_id": user.id})
        await self.db.create_test_message({"thread_id": thread.id, "role": "user"})
        self.assertEqual(await self.db.count_records("messages"), 1)
