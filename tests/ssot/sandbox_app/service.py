"""App code using the engine and sessionmaker it imported by value."""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.ssot.sandbox_app.db import SessionLocal, engine

INSERT = text("INSERT INTO users (email, is_active) VALUES (:email, true)")
COUNT = text("SELECT count(*) FROM users")


async def register_with_session(email: str) -> None:
    async with SessionLocal() as session:
        await session.execute(INSERT, {"email": email})
        await session.commit()


async def register_with_engine(email: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(INSERT, {"email": email})


async def register_then_roll_back(email: str) -> None:
    async with engine.connect() as connection:
        await connection.execute(INSERT, {"email": email})
        await connection.rollback()


async def count_users() -> int:
    async with engine.connect() as connection:
        return (await connection.execute(COUNT)).scalar_one()


async def register_with_a_session_on_the_engine(email: str) -> None:
    async with AsyncSession(engine) as session:
        await session.execute(INSERT, {"email": email})
        await session.commit()
