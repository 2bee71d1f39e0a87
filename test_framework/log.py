"""The framework's logger hierarchy, rooted at ``logging.getLogger("test_framework")``.

Library-style: the root gets a ``NullHandler`` and nothing is printed unless
the application configures logging or sets ``TEST_FRAMEWORK_LOG_LEVEL``.
Every record from a framework logger carries ``test_id``, the id of the test
running when it was made, so output from many tests can be told apart.
"""

from __future__ import annotations

import contextvars
import logging
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: config imports this module, and the pytest
    from sqlalchemy.engine import URL  # plugin config, in runs that never touch a database

ROOT_NAME = "test_framework"
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(test_id)s] %(message)s"

current_test_id: contextvars.ContextVar[str] = contextvars.ContextVar(
    "test_framework_test_id", default="-")

_root = logging.getLogger(ROOT_NAME)  # the same object for the process's life
_root.addHandler(logging.NullHandler())


class TestIdFilter(logging.Filter):
    """Stamp each record with the id of the test that is running."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "test_id"):
            record.test_id = current_test_id.get()
        return True


_test_id_filter = TestIdFilter()


def get_logger(name: str) -> logging.Logger:
    """Return a logger under ``test_framework`` whose records carry ``test_id``.

    Filters on a logger only see records made on that very logger, so each
    framework logger gets the filter itself.
    """
    if name != ROOT_NAME and not name.startswith(ROOT_NAME + "."):
        name = f"{ROOT_NAME}.{name}"
    logger = logging.getLogger(name)
    if _test_id_filter not in logger.filters:
        logger.addFilter(_test_id_filter)
    return logger


def configure_stderr_handler(level: str | None) -> None:
    """Send framework records at ``level`` and above to stderr (``TEST_FRAMEWORK_LOG_LEVEL``).

    Called as each test starts with the level ``config.run_setting("log_level")``
    read and checked (idempotent: one handler at most; None does nothing), never
    at import time, so merely importing the package configures nothing. When the
    root logger already prints to the same stream (nose2 calls
    ``logging.basicConfig()``), framework records stop there instead of
    reaching it too, so each line appears once.
    """
    root = _root
    if not level or any(getattr(h, "_test_framework", False) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler._test_framework = True
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_test_id_filter)
    root.addHandler(handler)
    root.setLevel(level)
    if any(isinstance(other, logging.StreamHandler) and other.stream is handler.stream
           for other in logging.getLogger().handlers):
        # nose2 calls logging.basicConfig(): its handler would print every record again.
        root.propagate = False


SECRET_PARAMETERS = re.compile(r"(?i)\b(password|passwd|pwd|passfile|sslpassword)=([^&\s'\"]*)")
USERINFO = re.compile(r"(://\s*[^/\s:@'\"]*:)([^@\s'\"]*)@")


def mask_url(url: str | URL) -> str:
    """Render a database URL with every password (userinfo or query) replaced by ``***``."""
    from sqlalchemy.engine import URL, make_url

    if isinstance(url, URL):
        return mask_secrets(url.render_as_string(hide_password=True))
    try:
        return mask_secrets(make_url(url).render_as_string(hide_password=True))
    except Exception:
        return mask_secrets(str(url))


class MaskedUrl(str):
    """A database URL whose ``str()`` is the real one (to hand a subprocess) and whose
    ``repr()`` hides the password, so a test's locals and failure messages never show it."""

    __slots__ = ()

    def __new__(cls, url: str | URL) -> "MaskedUrl":
        from sqlalchemy.engine import URL

        text = url.render_as_string(hide_password=False) if isinstance(url, URL) else str(url)
        return super().__new__(cls, text)

    def __repr__(self) -> str:
        return repr(mask_url(str(self)))


def mask_secrets(text: str) -> str:
    """Hide passwords in any text: ``user:password@`` of URLs and ``password=`` parameters.

    The one masking function: URLs, logged SQL parameters and error messages
    all pass through it.
    """
    return SECRET_PARAMETERS.sub(r"\1=***", USERINFO.sub(r"\1***@", str(text)))
