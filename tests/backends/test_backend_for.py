"""Bad URLs fail before anything connects, naming the value, its source and the fix."""

import time
import unittest
from unittest import mock

from test_framework.backends import backend_for
from test_framework.config import Setting, Timeouts
from test_framework.errors import ConfigurationError

ENV = "TEST_DATABASE_URL (environment)"


def check(url: str, source: str = ENV):
    return backend_for(Setting(url, source), timeouts=Timeouts(connect=3))


class TestBackendFor(unittest.TestCase):
    def test_default_is_sqlite_aiosqlite(self):
        backend = backend_for(Setting(None, "default"), timeouts=Timeouts(connect=3))
        self.assertEqual((backend.name, backend.url.get_driver_name()), ("sqlite", "aiosqlite"))

    def test_async_urls_accepted(self):
        self.assertEqual(check("postgresql+asyncpg://u:pw@h/app").name, "postgresql")
        self.assertEqual(check("sqlite+aiosqlite:///:memory:").name, "sqlite")

    def test_sync_postgres_driver_suggests_asyncpg(self):
        with self.assertRaises(ConfigurationError) as caught:
            check("postgresql://app:s3cret@db:5432/app")
        message = str(caught.exception)
        self.assertIn(ENV, message)
        self.assertIn("a sync driver", message)
        self.assertIn("'postgresql+asyncpg://app:***@db:5432/app'", message)
        self.assertNotIn("s3cret", message)

    def test_sync_sqlite_driver_suggests_aiosqlite(self):
        with self.assertRaisesRegex(ConfigurationError, r"use 'sqlite\+aiosqlite:///app.db'"):
            check("sqlite:///app.db", "TestX.database_url (class attribute)")

    def test_wrong_async_driver_is_named(self):
        with self.assertRaisesRegex(ConfigurationError, r"driver 'psycopg'.*postgresql\+asyncpg"):
            check("postgresql+psycopg://u@h/app")

    def test_postgres_alias_is_corrected(self):
        with self.assertRaisesRegex(ConfigurationError, r"use 'postgresql\+asyncpg://u@h/app'"):
            check("postgres://u@h/app")

    def test_unknown_backend_lists_supported(self):
        with self.assertRaisesRegex(ConfigurationError,
                                    r"backend 'mysql' is not supported.*'postgresql', 'sqlite'"):
            check("mysql+aiomysql://root:pw@localhost/app")

    def test_malformed_url_masks_password(self):
        with self.assertRaises(ConfigurationError) as caught:
            check("not a url at all :// user:hunter2@")
        self.assertIn("not a database URL", str(caught.exception))
        self.assertIn(ENV, str(caught.exception))
        self.assertNotIn("hunter2", str(caught.exception))

    def test_missing_driver_names_the_extra(self):
        from test_framework import backends
        backends._installed.cache_clear()  # asked once per process: ask again, hidden
        self.addCleanup(backends._installed.cache_clear)
        real_find_spec = __import__("importlib.util").util.find_spec
        hide = lambda name, *a: None if name == "asyncpg" else real_find_spec(name, *a)
        with mock.patch("importlib.util.find_spec", hide):
            with self.assertRaisesRegex(ConfigurationError,
                                        r"needs the 'asyncpg' package.*test_framework\[postgres\]"):
                check("postgresql+asyncpg://u@h/app")

    def test_errors_are_immediate(self):
        started = time.monotonic()
        for url in ("postgresql://u@h/a", "mysql://x", "::::"):
            with self.assertRaises(ConfigurationError):
                check(url)
        self.assertLess(time.monotonic() - started, 1.0)


class TestLongMultibyteNames(unittest.TestCase):
    """PostgreSQL cuts names at 63 bytes: the unique parts must survive, the stem gives way."""

    def test_unique_parts_kept_whole_and_stems_told_apart(self):
        names = []
        for stem in ("ü" * 40, "ü" * 41):
            backend = check(f"postgresql+asyncpg://u@h/{stem}")
            name = backend.test_database_name("p4194304", "a1b2c3", reserve=len("_building"))
            self.assertLessEqual(len(name.encode()) + len("_building"), 63, name)
            self.assertTrue(name.endswith("_p4194304_a1b2c3"), name)
            self.assertTrue(name.startswith("test_üü"), name)
            names.append(name)
        self.assertNotEqual(names[0], names[1], "a hash of the whole stem tells them apart")

    def test_short_names_unchanged(self):
        backend = check("postgresql+asyncpg://u@h/app")
        self.assertEqual(backend.test_database_name("p1", "ab"), "test_app_p1_ab")
