"""The web app in rollback mode, called over HTTP, with nothing handed to it.

``sandbox`` names the app's own engine and sessionmaker; the framework points
them at the test's connection for each test, so the routes' commits become
savepoints and the test's rollback undoes everything. ``examples/setup.cfg``
names the app's own database: the framework derives its test database from
it, and the sandbox accepts only an engine on that database.

The app runs on the test's event loop through ``httpx.ASGITransport``. (A
client that runs it in a thread of its own, Starlette's ``TestClient``, cannot
use the test's connection; the framework says so.)
"""

import warnings

import httpx

from test_framework import SSotAsyncTestCase
from test_framework.errors import SandboxError

from app.models import Base
from app.web import WELCOME, app


class ChatWebRollbackTest(SSotAsyncTestCase):
    metadata = Base.metadata
    sandbox = ["app.db:engine", "app.db:SessionLocal"]

    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.client = await self.enterAsyncContext(httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"))

    async def register(self, email):
        response = await self.client.post("/users", json={
            "email": email, "full_name": "Ada", "password": "s3cret"})
        self.assertEqual(response.status_code, 201, response.text)
        return response.json()["id"]

    async def test_register_route_writes_and_the_test_sees_it(self):
        await self.register("ada@example.com")

        self.assertEqual(await self.db.count_records("users", email="ada@example.com"), 1)
        again = await self.client.post("/users", json={
            "email": "ADA@example.com", "password": "other"})
        self.assertEqual(again.status_code, 409)

    async def test_each_test_starts_empty(self):
        self.assertEqual(await self.db.count_records("users"), 0)

    async def test_stats_route_runs_two_sessions_at_once(self):
        await self.register("grace@example.com")
        await self.db.create_test_user({"email": "alan@example.com"})

        response = await self.client.get("/stats")

        self.assertEqual(response.json(), {"users": 2, "messages": 0})

    async def test_background_task_writes_through_the_engine(self):
        user_id = await self.register("linus@example.com")

        response = await self.client.post(f"/users/{user_id}/welcome")

        self.assertEqual(response.status_code, 202)
        # ASGITransport returns once the app is done, background task included.
        row = await self.db.fetch_one(
            "SELECT m.content FROM messages m JOIN threads t ON t.id = m.thread_id "
            "WHERE t.user_id = :id", {"id": user_id})
        self.assertEqual(row.content, WELCOME)

    async def test_lifespan_disposing_the_engine_breaks_nothing(self):
        async with app.router.lifespan_context(app):
            await self.register("first@example.com")

        await self.register("second@example.com")  # the engine's dispose() left the test alone
        self.assertEqual(await self.db.count_records("users"), 2)

    def test_a_client_on_another_loop_is_told_to_use_asgi_transport(self):
        with warnings.catch_warnings():  # newer Starlette would rather its client used httpx2
            warnings.filterwarnings("ignore", message=".*starlette.testclient")
            from starlette.testclient import TestClient

        with self.assertRaises(SandboxError) as caught:
            TestClient(app).post("/users", json={"email": "x@example.com", "password": "p"})

        self.assertIn("httpx.ASGITransport", str(caught.exception))
