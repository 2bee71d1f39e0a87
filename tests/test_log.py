"""Password masking and the opt-in stderr handler."""

import contextlib
import io
import logging
import unittest

from test_framework.config import run_setting
from test_framework.errors import ConfigurationError
from test_framework.log import configure_stderr_handler, get_logger, mask_url


class TestMaskUrl(unittest.TestCase):
    def test_masks_parsable_and_unparsable(self):
        self.assertEqual(mask_url("postgresql+asyncpg://app:pw@db/app"),
                         "postgresql+asyncpg://app:***@db/app")
        self.assertNotIn("pw", mask_url("weird://app:pw@db:not-a-port/x"))
        self.assertEqual(mask_url("sqlite+aiosqlite:///x.db"), "sqlite+aiosqlite:///x.db")


def level(raw: str) -> str | None:
    """The level ``config`` reads from ``TEST_FRAMEWORK_LOG_LEVEL=raw``."""
    return run_setting("log_level", {"TEST_FRAMEWORK_LOG_LEVEL": raw}).value


class TestConfigureStderrHandler(unittest.TestCase):
    def tearDown(self):
        root = logging.getLogger("test_framework")
        for handler in list(root.handlers):
            if getattr(handler, "_test_framework", False):
                root.removeHandler(handler)
        root.setLevel(logging.NOTSET)
        root.propagate = True

    def test_level_adds_one_stderr_handler(self):
        configure_stderr_handler(level("debug"))
        configure_stderr_handler(level("debug"))
        root = logging.getLogger("test_framework")
        ours = [h for h in root.handlers if getattr(h, "_test_framework", False)]
        self.assertEqual(len(ours), 1)
        self.assertEqual(root.level, logging.DEBUG)

    def test_bad_level_is_explained(self):
        with self.assertRaisesRegex(ConfigurationError, "TEST_FRAMEWORK_LOG_LEVEL.*'LOUD'"):
            level("loud")

    def test_get_logger_roots_names_under_test_framework(self):
        self.assertEqual(get_logger("myapp.x").name, "test_framework.myapp.x")
        self.assertEqual(get_logger("test_framework.sql").name, "test_framework.sql")


class TestOneLinePerRecord(unittest.TestCase):
    """nose2 calls logging.basicConfig(): records must not print there a second time."""

    def setUp(self):
        framework = logging.getLogger("test_framework")
        state = (list(framework.handlers), framework.level, framework.propagate,
                 list(logging.getLogger().handlers))
        self.addCleanup(self.restore, *state)

    @staticmethod
    def restore(handlers, level, propagate, root_handlers):
        framework = logging.getLogger("test_framework")
        framework.handlers[:] = handlers
        framework.setLevel(level)
        framework.propagate = propagate
        logging.getLogger().handlers[:] = root_handlers

    def configure(self, *, root_prints_to_stderr: bool, root_handlers=()) -> io.StringIO:
        """Configure as a test start does, with stderr captured; return what was printed."""
        framework = logging.getLogger("test_framework")
        framework.handlers[:] = [h for h in framework.handlers
                                 if not getattr(h, "_test_framework", False)]
        framework.propagate = True  # as before the first test configured anything
        captured = io.StringIO()
        with contextlib.redirect_stderr(captured):
            logging.getLogger().handlers[:] = list(root_handlers)
            if root_prints_to_stderr:
                logging.getLogger().addHandler(logging.StreamHandler())  # as basicConfig does
            configure_stderr_handler(level("info"))
            get_logger("test_framework.provision").info("created test database x")
        return captured

    def test_root_printing_to_stderr_gets_no_copy(self):
        printed = self.configure(root_prints_to_stderr=True).getvalue()
        self.assertEqual(printed.count("created test database x"), 1, printed)
        self.assertIn(" INFO test_framework.provision [", printed)

    def test_records_still_reach_other_handlers_otherwise(self):
        seen = []
        handler = logging.Handler()
        handler.emit = seen.append
        printed = self.configure(root_prints_to_stderr=False, root_handlers=[handler]).getvalue()
        self.assertEqual(printed.count("created test database x"), 1, printed)
        self.assertEqual([record.getMessage() for record in seen], ["created test database x"])


class TestReprsHidePasswords(unittest.TestCase):
    def test_backend_database_and_settings_reprs(self):
        from test_framework.backends import backend_for
        from test_framework.config import Setting
        from test_framework.provision import ProvisionedDatabase
        url = "postgresql+asyncpg://app:pw-in-repr@db:5432/app"
        backend = backend_for(Setting(url, "TEST_DATABASE_URL (environment)"))
        database = ProvisionedDatabase(backend, backend.url.set(database="test_app_1"))
        setting = Setting(url, "TEST_DATABASE_URL (environment)")
        for text in (repr(backend), repr(database), str(backend.url), backend.masked_url,
                     repr(setting)):
            self.assertNotIn("pw-in-repr", text)
            self.assertIn("app", text)
