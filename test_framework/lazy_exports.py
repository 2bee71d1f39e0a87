"""Public names a package imports on first use (PEP 562), so importing it stays cheap.

``import test_framework`` happens in every pytest run (the plugin) and in
every child the framework starts; SQLAlchemy and sqlglot load only when a
test class or helper is asked for.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Mapping


def lazy_exports(package: str, homes: Mapping[str, str]) -> tuple[Callable, Callable]:
    """Return ``__getattr__`` and ``__dir__`` for ``package``: name -> module (relative)."""
    namespace = vars(sys.modules[package])

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{homes[name]}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(homes))

    return __getattr__, __dir__
