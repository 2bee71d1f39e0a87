"""A realistic application's suite (UUID keys, Enums, JSON, server defaults, relationships),
run by tests/functional/test_realistic_app.py under every runner from a folder not its own."""

import asyncio
import uuid

from sqlalchemy import select, text
from sqlalchemy.orm import selectinload

from test_framework import SSotAsyncTestCase
from tests.realistic_app.models import Base, Project, Role, Task, User


class ModelsTest(SSotAsyncTestCase):
    metadata = Base.metadata

    async def test_orm_rows_with_typed_columns(self):
        user = User(email="owner@x.test", role=Role.admin)
        self.session.add(user)
        await self.session.flush()
        task = await self.db.create("tasks", {"title": "write tests"})
        self.assertIsInstance(task.id, uuid.UUID)
        self.assertEqual(await self.db.count_records("tasks", id=task.id), 1)
        self.assertEqual(await self.db.count_records("users", "id = :id", {"id": user.id}), 1)

    async def test_relationships_load(self):
        task = await self.db.create("tasks", {})
        found = await self.session.scalar(
            select(Task).where(Task.id == task.id).options(selectinload(Task.project)))
        self.assertIsInstance(found.project, Project)
        self.assertEqual(found.project.id, task.project_id)


class MigratedTest(SSotAsyncTestCase):
    alembic_ini = "../../../realistic_app/alembic.ini"  # from this file's folder
    metadata = Base.metadata

    async def test_enum_and_json_from_migrations(self):
        project = await self.db.create("projects", {"settings": {"colour": "blue"}})
        self.assertEqual(await self.db.count_records("projects", id=project.id), 1)
        user = await self.db.create("users", {})
        self.assertIn(user.role, {"member", "admin", Role.member, Role.admin})


class WorkersTest(SSotAsyncTestCase):
    """Four workers, each in its own session, claim twelve tasks (read, then update)."""

    metadata = Base.metadata
    isolation = "commit"
    n_plus_one = "ignore"  # the workers poll with the same SELECT on purpose

    async def test_each_task_claimed_once(self):
        project = await self.db.create("projects", {})
        for number in range(12):
            await self.db.create("tasks", {"project_id": project.id, "code": f"t{number}",
                                           "title": "todo", "priority": 1})
        claimed = []

        async def worker(name):
            while True:
                async with self.session_factory() as session:
                    task_id = await session.scalar(text(
                        "SELECT id FROM tasks WHERE done = :no ORDER BY code LIMIT 1"),
                        {"no": False})
                    if task_id is None:
                        return
                    result = await session.execute(text(
                        "UPDATE tasks SET done = :yes WHERE id = :id AND done = :no"),
                        {"yes": True, "no": False, "id": task_id})
                    await session.commit()
                    if result.rowcount == 1:
                        claimed.append((name, task_id))

        async with asyncio.timeout(30):
            await asyncio.gather(*(worker(n) for n in range(4)))
        self.assertEqual(len(claimed), 12)
        self.assertEqual(len({task_id for _, task_id in claimed}), 12)
