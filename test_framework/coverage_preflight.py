"""Warn once when coverage measures the run without greenlet support.

Async SQLAlchemy resumes the caller's code inside greenlets. Coverage that
only knows about threads loses track there and reports the lines after an
``await`` on the database as not run, which looks like untested code and is
hard to trace back to configuration. The first framework test checks the
running ``coverage.Coverage`` (if any; coverage is never imported here) and
warns with the lines to add.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

SETUP_CFG_LINES = "[coverage:run]\nconcurrency = greenlet, thread"
_checked = False


class CoverageConfigWarning(UserWarning):
    """Coverage is measuring async database code without ``concurrency = greenlet``."""


def check_coverage_concurrency() -> None:
    """Warn (once per process) if coverage runs without greenlet concurrency."""
    global _checked
    if _checked:
        return
    _checked = True
    advice = coverage_advice(running_coverage())
    if advice:
        warnings.warn(advice, CoverageConfigWarning, stacklevel=2)


def running_coverage() -> Any:
    """Return the measuring ``coverage.Coverage``, or None (without importing coverage)."""
    module = sys.modules.get("coverage")
    current = getattr(getattr(module, "Coverage", None), "current", None)
    return current() if current is not None else None


def coverage_advice(cov: Any) -> str | None:
    """Return what to add to the configuration, or None if ``cov`` is absent or set up right."""
    if cov is None:
        return None
    concurrency = list(cov.config.concurrency or ["thread"])
    if "greenlet" in concurrency:
        return None
    where = cov.config.config_file or "no configuration file"
    return (f"coverage is measuring with concurrency = {', '.join(concurrency)} (from {where}); "
            "async SQLAlchemy resumes code in greenlets, so lines after an await on the "
            "database will be reported as not run. Add to setup.cfg:\n\n"
            f"{SETUP_CFG_LINES}\n\n"
            "(in .coveragerc the section is [run]; in pyproject.toml it is "
            "[tool.coverage.run] with concurrency = [\"greenlet\", \"thread\"])")
