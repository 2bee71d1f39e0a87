"""BigInteger primary keys number their rows on SQLite too, as BIGSERIAL does on PostgreSQL.

The framework builds a database from ``metadata`` with SQLAlchemy's
``with_variant(Integer, "sqlite")`` rule for such keys; the application's own
MetaData is never changed. Both backends run these.
"""

import unittest

from sqlalchemy import BigInteger, MetaData, String, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.schema import CreateTable

from test_framework import SSotAsyncTestCase
from test_framework.backends import backend_for
from test_framework.config import project_settings
from test_framework.provision.schema import (MetadataSchema, big_integer_keys_autoincrement,
                                             ddl_digest)
from tests.support import backend_name, problems, run_case, separate_connection


class Base(DeclarativeBase):
    metadata = MetaData()


class RefreshToken(Base):
    __tablename__ = "auth_refresh_token"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    token: Mapped[str] = mapped_column(String(40))


def user_ddl() -> str:
    """The table's DDL as the application's own MetaData gives it, outside the framework."""
    return str(CreateTable(RefreshToken.__table__).compile(dialect=dialect()))


def fingerprinted_ddl() -> str:
    """The table's DDL as the template's fingerprint hashes it."""
    with big_integer_keys_autoincrement(dialect()) as variant_dialect:
        return str(CreateTable(RefreshToken.__table__).compile(dialect=variant_dialect)).strip()


def dialect():
    return backend_for(project_settings().database_url).dialect


class TestBigIntegerKeys(unittest.TestCase):
    def test_rows_get_ids_one_and_two_without_changing_the_models(self):
        before = user_ddl()
        seen = {}

        class Tokens(SSotAsyncTestCase):
            metadata = Base.metadata

            async def test_insert_twice_without_id(self):
                for value in ("first", "second"):
                    self.session.add(RefreshToken(token=value))
                    await self.session.flush()
                seen["ids"] = (await self.session.scalars(
                    select(RefreshToken.id).order_by(RefreshToken.id))).all()
                seen["built"] = await built_table(self.engine.url)

        result = run_case(Tokens)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["ids"], [1, 2])
        if backend_name() == "sqlite":  # the file holds exactly the DDL the fingerprint hashed
            self.assertEqual(seen["built"], fingerprinted_ddl())
            self.assertIn("id INTEGER NOT NULL", seen["built"])
        else:
            self.assertEqual(seen["built"][0], "bigint")
            self.assertTrue(seen["built"][1].startswith("nextval("), seen["built"])
        self.assertIs(type(RefreshToken.__table__.c.id.type), BigInteger)
        self.assertEqual(user_ddl(), before)
        self.assertIn("BIGINT" if backend_name() == "sqlite" else "BIGSERIAL", before)

    def test_fingerprint_hashes_the_ddl_that_is_built(self):
        """The template's name must change exactly when the built schema would."""
        with big_integer_keys_autoincrement(dialect()) as variant_dialect:
            built = ddl_digest(Base.metadata, variant_dialect)
        fingerprint = MetadataSchema(Base.metadata)._ddl_digest(dialect())
        self.assertEqual(fingerprint, built)
        plain = ddl_digest(Base.metadata, dialect())
        if backend_name() == "sqlite":
            self.assertNotEqual(fingerprint, plain)
        else:  # PostgreSQL already numbers BIGINT keys: nothing changes, templates are reused
            self.assertEqual(fingerprint, plain)


async def built_table(url):
    """How the test database holds auth_refresh_token, read from another connection.

    SQLite keeps each table's CREATE statement as sent; PostgreSQL reports
    the key's type and default (a sequence for BIGSERIAL).
    """
    async with separate_connection(url) as connection:
        if backend_name() == "sqlite":
            return (await connection.execute(text(
                "SELECT sql FROM sqlite_master WHERE name = 'auth_refresh_token'"))).scalar_one()
        return (await connection.execute(text(
            "SELECT data_type, column_default FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'auth_refresh_token' "
            "AND column_name = 'id'"))).one()


if __name__ == "__main__":
    unittest.main()
