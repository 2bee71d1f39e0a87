"""Code SQLAlchemy runs inside its greenlets, and lines after awaits, for the coverage test.

Lines ending in ``# after await`` run in the test's own coroutine after a
database call; lines ending in ``# in greenlet`` run inside SQLAlchemy's
greenlets: a ``run_sync`` function, an event listener and a type processor,
each after the driver was awaited from inside the greenlet. Three sessions
do it at once, as an application's concurrent tasks do: while one greenlet
waits on the driver, the others run.
"""

import asyncio

from sqlalchemy import String, TypeDecorator, event, literal, select, text

from test_framework import SSotAsyncTestCase


class Lowered(TypeDecorator):
    impl = String
    cache_ok = True

    def process_result_value(self, value, dialect):
        lowered = value.lower()  # in greenlet
        return lowered  # in greenlet


def count_users(connection):
    connection.execute(text("SELECT 1"))
    counted = connection.execute(text("SELECT count(*) FROM users")).scalar_one()  # in greenlet
    return counted  # in greenlet


def note_statement(conn, cursor, statement, parameters, context, executemany):
    conn.info["last statement"] = statement  # in greenlet


class GreenletCode(SSotAsyncTestCase):
    isolation = "commit"  # sessions of their own, used at the same time

    async def count_in_own_session(self) -> int:
        async with self.session_factory() as session:
            connection = await session.connection()
            counted = await connection.run_sync(count_users)
            return counted  # after await

    async def test_sync_code_inside_greenlets(self):
        engine = self.engine.sync_engine
        event.listen(engine, "after_cursor_execute", note_statement)
        self.addCleanup(event.remove, engine, "after_cursor_execute", note_statement)
        await self.db.create_test_user()
        created = 1  # after await
        counts = await asyncio.gather(*(self.count_in_own_session() for _ in range(3)))
        self.assertEqual(counts, [created] * 3)  # after await
        value = (await self.session.execute(select(literal("ABC", Lowered)))).scalar_one()
        self.assertEqual(value, "abc")  # after await
