"""Warn once when coverage measures the run without greenlet support.

Async SQLAlchemy runs sync code inside greenlets it switches out of at each
driver call: ``run_sync`` functions, event listeners, type processors, the
ORM's own work. Coverage that only knows about threads keeps one record per
thread of which function is running, and a switch while other code runs
(several tasks using the database at once; aiosqlite's callbacks) puts it
out of step: lines of SQLAlchemy's own files are recorded as lines of the
module that was running, so a statement that never ran can be reported as
run, and a line that did run, in such a function or right after an ``await``
in such a task, can be reported as not run. One task awaiting asyncpg at a
time was measured right (coverage 7.x, Python 3.11), which is why the old
claim that every line after an ``await`` goes missing did not show.
``tests/test_coverage_preflight.py`` measures it. The first framework test
checks the running ``coverage.Coverage`` (if any; coverage is never imported
here) and warns with the lines to add.
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
            "async SQLAlchemy runs sync code (run_sync functions, event listeners, type "
            "processors) inside greenlets, and when it switches them while other code runs "
            "(tasks using the database at once, aiosqlite's callbacks) coverage without "
            "greenlet support records SQLAlchemy's lines as lines of your modules: statements "
            "that never ran can be reported as run, and lines that ran, in those functions or "
            "after an await in those tasks, as not run. Add to setup.cfg:\n\n"
            f"{SETUP_CFG_LINES}\n\n"
            "(in .coveragerc the section is [run]; in pyproject.toml it is "
            "[tool.coverage.run] with concurrency = [\"greenlet\", \"thread\"])")
