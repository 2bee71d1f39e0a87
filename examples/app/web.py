"""The chat backend over HTTP: a Starlette app on the module-level engine and sessionmaker.

Needs the ``asgi`` extra (``pip install 'test_framework[asgi]'``). Routes take
their sessions from ``database_session``, the app's one dependency; nothing
here knows about tests.
"""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy import func, insert, select
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.db import SessionLocal, engine
from app.errors import EmailTaken
from app.models import Message, Thread, User, new_id
from app.service import ChatService

WELCOME = "Welcome! Ask me anything."


@contextlib.asynccontextmanager
async def database_session():
    """The dependency every route takes its session from: one session, closed after."""
    async with SessionLocal() as session:
        yield session


async def register(request: Request) -> JSONResponse:
    """Create a user (a write and a commit)."""
    body = await request.json()
    try:
        user = await ChatService(SessionLocal).register_user(
            body["email"], body.get("full_name", ""), body["password"])
    except EmailTaken as exc:
        return JSONResponse({"error": str(exc)}, status_code=409)
    return JSONResponse({"id": user.id, "email": user.email}, status_code=201)


async def _count(model) -> int:
    async with database_session() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def stats(request: Request) -> JSONResponse:
    """Two queries at once, each in its own session."""
    users, messages = await asyncio.gather(_count(User), _count(Message))
    return JSONResponse({"users": users, "messages": messages})


async def welcome(request: Request) -> JSONResponse:
    """Answer at once; open the user's first thread in a background task after the response."""
    user_id = int(request.path_params["user_id"])
    return JSONResponse({"queued": True}, status_code=202,
                        background=BackgroundTask(post_welcome, user_id))


async def post_welcome(user_id: int) -> None:
    """The background task: Core statements on the engine, as a worker's would be."""
    thread_id = new_id("thr")()
    async with engine.begin() as connection:
        await connection.execute(insert(Thread).values(id=thread_id, user_id=user_id,
                                                       metadata_={"title": "Welcome"}))
        await connection.execute(insert(Message).values(thread_id=thread_id, role="assistant",
                                                        content=WELCOME))


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    """Close the engine's connections when the server stops."""
    yield
    await engine.dispose()


app = Starlette(routes=[
    Route("/users", register, methods=["POST"]),
    Route("/stats", stats, methods=["GET"]),
    Route("/users/{user_id:int}/welcome", welcome, methods=["POST"]),
], lifespan=lifespan)
