"""Settings precedence: class attribute > environment > setup.cfg > default."""

import tempfile
import unittest
from pathlib import Path

from test_framework.config import (RUN_KEYS, ClassSettings, Setting, cache_folder,
                                   database_url_for, load_project_settings, parse_bool,
                                   project_settings, run_setting)
from test_framework.errors import ConfigurationError


def temporary_folder(test: unittest.TestCase) -> Path:
    folder = tempfile.TemporaryDirectory(prefix="tf_config_")
    test.addCleanup(folder.cleanup)
    return Path(folder.name)


def project_with_setup_cfg(test: unittest.TestCase, text: str) -> Path:
    folder = temporary_folder(test)
    (folder / "setup.cfg").write_text(text)
    (folder / "pkg" / "sub").mkdir(parents=True)
    return folder


class TestProjectSettings(unittest.TestCase):
    def test_default_is_sqlite_temp_file_and_no_debug(self):
        settings = load_project_settings({}, temporary_folder(self))
        self.assertEqual(settings.database_url, Setting(None, "default"))
        self.assertIsNone(settings.asyncio_debug.value)
        self.assertEqual(settings.connect_timeout.value, 3.0)

    def test_setup_cfg_found_from_a_subfolder(self):
        folder = project_with_setup_cfg(self,
            "[test_framework]\ndatabase_url = sqlite+aiosqlite:///cfg.db\nconnect_timeout = 2\n")
        settings = load_project_settings({}, folder / "pkg" / "sub")
        self.assertEqual(settings.database_url.value, "sqlite+aiosqlite:///cfg.db")
        self.assertIn(str(folder / "setup.cfg"), settings.database_url.source)
        self.assertEqual(settings.connect_timeout.value, 2.0)

    def test_environment_beats_setup_cfg(self):
        folder = project_with_setup_cfg(self, "[test_framework]\ndatabase_url = sqlite+aiosqlite:///cfg.db\n")
        settings = load_project_settings(
            {"TEST_DATABASE_URL": "sqlite+aiosqlite:///env.db"}, folder)
        self.assertEqual(settings.database_url,
                         Setting("sqlite+aiosqlite:///env.db", "TEST_DATABASE_URL (environment)"))

    def test_setup_cfg_without_our_section_is_ignored(self):
        folder = project_with_setup_cfg(self, "[metadata]\nname = x\n")
        self.assertEqual(load_project_settings({}, folder).database_url.source, "default")

    def test_class_attribute_beats_everything(self):
        class TestWithUrl:
            database_url = "sqlite+aiosqlite:///:memory:"
        setting = database_url_for(TestWithUrl)
        self.assertEqual(setting.value, "sqlite+aiosqlite:///:memory:")
        self.assertIn("TestWithUrl.database_url (class attribute)", setting.source)

    def test_bad_boolean_names_variable_and_fix(self):
        with self.assertRaisesRegex(ConfigurationError,
                                    r"TEST_FRAMEWORK_ASYNCIO_DEBUG \(environment\) is 'maybe'.*true/false"):
            load_project_settings({"TEST_FRAMEWORK_ASYNCIO_DEBUG": "maybe"}, temporary_folder(self))

    def test_bad_timeout_names_setup_cfg(self):
        folder = project_with_setup_cfg(self, "[test_framework]\nconnect_timeout = soon\n")
        with self.assertRaisesRegex(ConfigurationError, r"connect_timeout in \[test_framework\].*'soon'"):
            load_project_settings({}, folder)

    def test_unparsable_setup_cfg_is_a_clear_error(self):
        folder = project_with_setup_cfg(self, "this is not ini\n")
        with self.assertRaisesRegex(ConfigurationError, "cannot be parsed"):
            load_project_settings({}, folder)


class TestClassSettings(unittest.TestCase):
    def test_each_class_value_with_its_source_else_the_default(self):
        Configured = type("Configured", (), {
            "isolation": "commit", "leftover_rows": "error", "sandbox": ["app.db:engine"],
            "session_options": {"expire_on_commit": True}, "reset_sequences": "yes",
            "query_snapshots": True})

        settings = ClassSettings(Configured)
        self.assertEqual(settings.isolation,
                         Setting("commit", "Configured.isolation (class attribute)"))
        self.assertEqual(settings.leftover_rows.value, "error")
        self.assertEqual(settings.sandbox.value, ["app.db:engine"])
        self.assertEqual(settings.session_options.value, {"expire_on_commit": True})
        self.assertEqual(settings.reset_sequences,
                         Setting(True, "Configured.reset_sequences (class attribute)"))
        self.assertTrue(settings.query_snapshots.value)

        plain = ClassSettings(type("Plain", (), {}))
        self.assertEqual(plain.isolation, Setting("rollback", "default"))
        self.assertEqual(plain.leftover_rows, project_settings().leftover_rows)
        self.assertEqual(plain.sandbox, Setting(None, "default"))
        self.assertEqual(plain.check_deferred_constraints, Setting(True, "default"))
        self.assertEqual(plain.n_plus_one, project_settings().n_plus_one)
        self.assertIsNone(plain.alembic_ini)

    def test_a_bad_value_fails_when_used_naming_the_attribute_and_the_value(self):
        Typos = type("Typos", (), {"reset_sequences": "sometimes", "n_plus_one": "eror"})

        settings = ClassSettings(Typos)  # reads nothing yet
        with self.assertRaisesRegex(ConfigurationError, r"^Typos\.reset_sequences \(class "
                                    r"attribute\) is 'sometimes', not a boolean"):
            settings.reset_sequences
        with self.assertRaisesRegex(ConfigurationError, r"^Typos\.n_plus_one \(class "
                                    r"attribute\) is 'eror'.*did you mean 'error'"):
            settings.n_plus_one
        self.assertEqual(settings.isolation.value, "rollback", "the others still read")

    def test_a_later_change_to_the_class_is_seen_by_the_next_settings(self):
        class Changed:
            isolation = "commit"

        first = ClassSettings(Changed)
        self.assertEqual(first.isolation.value, "commit")
        Changed.isolation = "truncate"
        self.assertEqual(first.isolation.value, "commit", "one object, one reading")
        self.assertEqual(ClassSettings(Changed).isolation.value, "truncate")

    def test_metadata_none_is_a_value_and_no_attribute_is_none(self):
        self.assertIsNone(ClassSettings(type("NoAttribute", (), {})).metadata)
        self.assertEqual(ClassSettings(type("NoSchema", (), {"metadata": None})).metadata,
                         Setting(None, "NoSchema.metadata (class attribute)"))


class TestRunSettings(unittest.TestCase):
    """Shard, timing, log level and shuffle: one run's switches, from the environment alone."""

    def test_each_value_with_its_source(self):
        environ = {"TEST_FRAMEWORK_SHARD": "2/4", "TEST_FRAMEWORK_TIMING": "on",
                   "TEST_FRAMEWORK_LOG_LEVEL": "info", "TEST_FRAMEWORK_SHUFFLE": "7"}
        self.assertEqual([run_setting(name, environ) for name in RUN_KEYS], [
            Setting((2, 4), "TEST_FRAMEWORK_SHARD (environment)"),
            Setting(10, "TEST_FRAMEWORK_TIMING (environment)"),
            Setting("INFO", "TEST_FRAMEWORK_LOG_LEVEL (environment)"),
            Setting(7, "TEST_FRAMEWORK_SHUFFLE (environment)")])
        self.assertEqual([run_setting(name, {"TEST_FRAMEWORK_SHARD": " "}) for name in RUN_KEYS],
                         [Setting(None, "default")] * len(RUN_KEYS))

    def test_setup_cfg_does_not_set_them(self):
        folder = project_with_setup_cfg(self, "[test_framework]\nshard = 9/4\ntiming = soon\n")
        settings = load_project_settings({}, folder)
        self.assertFalse(any(hasattr(settings, name) for name in RUN_KEYS))

    def test_bad_log_level_names_variable_and_fix(self):
        with self.assertRaisesRegex(ConfigurationError, r"^TEST_FRAMEWORK_LOG_LEVEL \(environment\) "
                                                        r"is 'LOUD', not a logging level; use DEBUG"):
            run_setting("log_level", {"TEST_FRAMEWORK_LOG_LEVEL": "loud"})


class TestParseBool(unittest.TestCase):
    def test_one_reading_for_every_yes_no_setting(self):
        self.assertEqual([parse_bool(word) for word in ("1", " Yes", "ON", "true")], [True] * 4)
        self.assertEqual([parse_bool(word) for word in ("0", "no ", "Off", "FALSE")], [False] * 4)
        self.assertEqual([parse_bool(word) for word in ("", "2", "maybe")], [None] * 3)
        self.assertIs(load_project_settings({"TEST_FRAMEWORK_KEEP_DATABASE": "Yes"},
                                            temporary_folder(self)).keep_database.value, True)
        self.assertEqual(run_setting("timing", {"TEST_FRAMEWORK_TIMING": "Yes"}).value, 10)


class TestCacheFolder(unittest.TestCase):
    def test_xdg_cache_home_with_its_source_else_home_cache(self):
        folder = temporary_folder(self)
        self.assertEqual(cache_folder({"XDG_CACHE_HOME": str(folder)}),
                         Setting(folder / "test_framework", "XDG_CACHE_HOME (environment)"))
        self.assertEqual(cache_folder({"XDG_CACHE_HOME": ""}),
                         Setting(Path.home() / ".cache" / "test_framework", "default"))
