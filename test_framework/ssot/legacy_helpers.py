"""The helper surface suites written for the original SSOT framework call most.

Metrics (``record_metric``, ``get_all_metrics`` with a real elapsed time and a
real SQL statement count), the test context, environment variables that are
put back after the test, and ``expect_exception``. A mixin of both base
classes; its state is made on first use, because pytest calls
``setup_method`` (where suites often use these) before ``setUp``.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from test_framework.log import mask_url
from test_framework.ssot.environment import EnvironmentChanges
from test_framework.ssot.query_capture import CapturingMetrics

__unittest = True


class LegacyHelpers:
    """record_metric & co., get_test_context, env var helpers, expect_exception."""

    @property
    def _ssot_metrics(self) -> CapturingMetrics:
        if "_ssot_metrics_state" not in self.__dict__:
            self.__dict__["_ssot_metrics_state"] = CapturingMetrics()
        return self.__dict__["_ssot_metrics_state"]

    @property
    def _ssot_environment(self) -> EnvironmentChanges:
        if "_ssot_environment_state" not in self.__dict__:
            self.__dict__["_ssot_environment_state"] = EnvironmentChanges()
            self.addCleanup(self.__dict__["_ssot_environment_state"].restore)
        return self.__dict__["_ssot_environment_state"]

    # -- metrics ----------------------------------------------------------------

    def record_metric(self, name: str, value: Any) -> None:
        self._ssot_metrics.record(name, value)

    def get_metric(self, name: str, default: Any = None) -> Any:
        return self._ssot_metrics.get(name, default)

    def get_all_metrics(self) -> dict[str, Any]:
        """Custom metrics plus ``execution_time`` (s) and ``db_query_count`` (SQL statements)."""
        return self._ssot_metrics.all()

    def increment_db_query_count(self, count: int = 1) -> None:
        self._ssot_metrics.manual_queries += count

    def get_test_context(self) -> dict[str, Any]:
        """Describe the running test: id, names, isolation mode and (masked) database URL."""
        resources = getattr(getattr(self, "_ssot_scope", None), "resources", None)
        database = getattr(resources, "database", None)
        return {
            "test_id": self.id(),
            "test_name": self._testMethodName,
            "test_class": type(self).__qualname__,
            "test_module": type(self).__module__,
            "isolation": self.isolation,
            "backend": getattr(getattr(resources, "backend", None), "name", None),
            "database_url": mask_url(database.url) if database else None,
        }

    # -- environment ----------------------------------------------------------------

    def set_env_var(self, name: str, value: str) -> None:
        """Set an environment variable until the end of the test."""
        self._ssot_environment.set(name, value)

    def get_env_var(self, name: str, default: str | None = None) -> str | None:
        return self._ssot_environment.get(name, default)

    def delete_env_var(self, name: str) -> None:
        """Remove an environment variable until the end of the test."""
        self._ssot_environment.delete(name)

    @contextlib.contextmanager
    def temp_env_vars(self, **values: str) -> Iterator[None]:
        """Set environment variables for a ``with`` block only."""
        with self._ssot_environment.temporary(**values):
            yield

    def assert_env_var_set(self, name: str, expected: str | None = None) -> None:
        value = self._ssot_environment.get(name)
        if value is None:
            self.fail(f"environment variable {name} is not set")
        if expected is not None:
            self.assertEqual(value, expected, f"environment variable {name}")

    def assert_env_var_not_set(self, name: str) -> None:
        value = self._ssot_environment.get(name)
        if value is not None:
            self.fail(f"environment variable {name} is set to {value!r}")

    # -- assertions ----------------------------------------------------------------

    def expect_exception(self, exception: type[BaseException] | tuple,
                         message_pattern: str | None = None):
        """Return unittest's ``assertRaises`` context (``.exception`` holds what was raised)."""
        if message_pattern is None:
            return self.assertRaises(exception)
        return self.assertRaisesRegex(exception, message_pattern)
