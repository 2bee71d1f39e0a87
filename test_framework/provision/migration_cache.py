"""Remember migration checks that passed, so an unchanged project is not walked again.

One small JSON file, ``$XDG_CACHE_HOME/test_framework/migration_checks.json``
(``~/.cache/...`` without the variable), maps a fingerprint (a hash of the
scripts, ``env.py``, ``alembic.ini``, the models' DDL, the data hook and the
backend: ``MigrationProject.fingerprint``) to when and how fast that exact
project passed. Only full passes are written: a project with a problem is
checked every run until it is fixed. The newest ``MAX_ENTRIES`` are kept.

Several processes may write at once (pytest-xdist, two terminals): each
writes a whole new file and renames it into place, so a reader never sees a
half-written file; the one that renames last wins, and a pass lost that way
only costs a re-check.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from test_framework.config import cache_folder
from test_framework.log import get_logger

logger = get_logger(__name__)
CACHE_FILE = "migration_checks.json"
MAX_ENTRIES = 200


def cache_path() -> Path:
    """The cache file, beside the SQLite templates (``backends/sqlite.py``)."""
    return cache_folder().value / CACHE_FILE


def passed_before(fingerprint: str) -> dict | None:
    """The record of an earlier pass with exactly this fingerprint, if any."""
    return _read(cache_path()).get(fingerprint)


def remember_pass(fingerprint: str, *, seconds: float, revisions: int, backend: str,
                  alembic_ini: str) -> None:
    """Record a full pass; a cache that cannot be written costs a warning, not the test."""
    path = cache_path()
    entries = _read(path)
    entries[fingerprint] = {"checked_at": time.time(), "seconds": round(seconds, 3),
                            "revisions": revisions, "backend": backend,
                            "alembic_ini": alembic_ini}
    newest = sorted(entries.items(), key=lambda item: item[1].get("checked_at", 0))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{CACHE_FILE}.",
                                         delete=False, encoding="utf-8") as file:
            json.dump(dict(newest[-MAX_ENTRIES:]), file, indent=1, sort_keys=True)
        os.replace(file.name, path)
    except OSError as exc:
        logger.warning("could not record the migration check in %s (%s); the next run "
                       "checks again", path, exc)


def _read(path: Path) -> dict[str, dict]:
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        logger.warning("ignoring the unreadable migration check cache %s (%s); it is "
                       "rewritten after the next pass", path, exc)
        return {}
    return entries if isinstance(entries, dict) else {}
