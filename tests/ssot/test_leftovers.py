"""Commit mode reports rows a test left behind, with the id of the test that left them."""

import asyncio
import unittest
import warnings

from sqlalchemy import Column, Integer, MetaData, Table, insert, text

from test_framework import SSotAsyncTestCase
from test_framework.ssot.leftovers import LeftoverRowsWarning
from tests.support import problems, run_case, separate_connection


def leaving_class(policy: str, seen: dict) -> type:
    class LeavesRows(SSotAsyncTestCase):
        isolation = "commit"
        leftover_rows = policy

        async def test_1_clean(self):
            seen["url"] = self.engine.url
            await self.db.create_test_user({"email": "tracked@x.test"})

        async def test_2_app_row_left(self):
            async with self.session_factory() as app:
                await app.execute(text("INSERT INTO users (email, is_active) VALUES ('app@x.test', true)"))
                await app.commit()

        async def test_3_clean_again(self):
            pass

    return LeavesRows


async def delete_users(url):
    async with separate_connection(url) as connection:
        await connection.execute(text("DELETE FROM users"))


class TestLeftoverRows(unittest.TestCase):
    def test_warns_once_naming_the_test_that_left_rows(self):
        seen = {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_case(leaving_class("warn", seen))
        asyncio.run(delete_users(seen["url"]))
        self.assertTrue(result.wasSuccessful(), problems(result))
        leftovers = [str(w.message) for w in caught if w.category is LeftoverRowsWarning]
        self.assertEqual(len(leftovers), 1, leftovers)
        self.assertIn("LeavesRows.test_2_app_row_left left rows behind: users +1",
                      leftovers[0])

    def test_error_policy_fails_the_test(self):
        seen = {}
        result = run_case(leaving_class("error", seen))
        asyncio.run(delete_users(seen["url"]))
        self.assertEqual([t.id().rsplit(".", 1)[-1] for t, _ in result.errors],
                         ["test_2_app_row_left"], problems(result))

    def test_bad_policy_is_explained(self):
        result = run_case(leaving_class("sometimes", {}), "test_3_clean_again")
        self.assertIn("leftover_rows is 'sometimes'; use one of ['warn', 'error', 'ignore']",
                      problems(result))


AWKWARD = MetaData()
ORDER_ITEMS = Table("Order Items", AWKWARD, Column("id", Integer, primary_key=True))


class TestTableNames(unittest.TestCase):
    def test_a_table_whose_name_needs_quoting_is_counted(self):
        """The count names tables from the catalog: one with a space and capitals is
        quoted as the dialect quotes it, and its growth is reported under its name."""
        class LeavesAnItem(SSotAsyncTestCase):
            isolation = "commit"
            metadata = AWKWARD

            async def test_1_baseline(self):
                pass

            async def test_2_leaves_an_item(self):
                async with self.session_factory() as app:
                    await app.execute(insert(ORDER_ITEMS).values(id=1))
                    await app.commit()

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_case(LeavesAnItem)
        self.assertTrue(result.wasSuccessful(), problems(result))
        leftovers = [str(w.message) for w in caught if w.category is LeftoverRowsWarning]
        self.assertEqual(len(leftovers), 1, leftovers)
        self.assertIn("test_2_leaves_an_item left rows behind: Order Items +1", leftovers[0])


class TestCheckedOutConnection(unittest.TestCase):
    def test_unclosed_connection_closed_and_warned_with_test_id(self):
        kept, seen = [], {}

        class KeepsConnection(SSotAsyncTestCase):
            isolation = "commit"

            async def test_keeps(self):
                kept.append(await self.engine.connect())
                kept.append(await kept[0].get_raw_connection())

            async def asyncTearDown(self):
                await super().asyncTearDown()  # warns and closes it here
                seen["invalidated"] = kept[1].dbapi_connection is None

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run_case(KeepsConnection)
        messages = [str(w.message) for w in caught if w.category is ResourceWarning]
        self.assertTrue(any("KeepsConnection.test_keeps left 1 connection(s) checked out" in m
                            for m in messages), messages)
        self.assertTrue(seen["invalidated"])
