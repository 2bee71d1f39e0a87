"""Environment-variable helpers whose every change is undone after the test."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, MutableMapping

_MISSING = object()


class EnvironmentChanges:
    """Change ``os.environ`` while remembering each variable's original value."""

    def __init__(self, environ: MutableMapping[str, str] = os.environ) -> None:
        self._environ = environ
        self._originals: dict[str, object] = {}

    def set(self, name: str, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"environment variable {name} must be a str, got {value!r}; "
                            f"use str({value!r})")
        self._remember(name)
        self._environ[name] = value

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._environ.get(name, default)

    def delete(self, name: str) -> None:
        self._remember(name)
        self._environ.pop(name, None)

    @contextlib.contextmanager
    def temporary(self, **values: str) -> Iterator[None]:
        """Set variables for a block, then put back what was there before the block."""
        before = {name: self._environ.get(name, _MISSING) for name in values}
        for name, value in values.items():
            self.set(name, value)
        try:
            yield
        finally:
            for name, value in before.items():
                self._put_back(name, value)

    def restore(self) -> None:
        """Put back every variable changed through this object; safe to call twice."""
        while self._originals:
            self._put_back(*self._originals.popitem())

    def _remember(self, name: str) -> None:
        self._originals.setdefault(name, self._environ.get(name, _MISSING))

    def _put_back(self, name: str, value: object) -> None:
        if value is _MISSING:
            self._environ.pop(name, None)
        else:
            self._environ[name] = value
