"""Split a suite deterministically across machines: ``TEST_FRAMEWORK_SHARD=2/4``.

A test class belongs to shard ``crc32("<module>.<Class>") % count + 1``, so
every machine computes the same split without talking to the others, and a
class's tests stay together (they share a loop and a connection). Each shard
provisions its own databases as usual.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass

from test_framework.errors import ConfigurationError

SHARD_ENVIRONMENT = "TEST_FRAMEWORK_SHARD"


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def includes(self, test_class: type) -> bool:
        return shard_of(test_class, self.count) == self.index


def shard_of(test_class: type, count: int) -> int:
    key = f"{test_class.__module__}.{test_class.__qualname__}"
    return zlib.crc32(key.encode("utf-8")) % count + 1


def current_shard(environ=os.environ) -> Shard | None:
    """Parse ``TEST_FRAMEWORK_SHARD`` ("index/count", 1-based); None when unset."""
    raw = environ.get(SHARD_ENVIRONMENT, "").strip()
    if not raw:
        return None
    index, _, count = raw.partition("/")
    try:
        shard = Shard(int(index), int(count))
    except ValueError:
        shard = None
    if shard is None or not 1 <= shard.index <= shard.count:
        raise ConfigurationError(
            f"{SHARD_ENVIRONMENT} (environment) is {raw!r}; use INDEX/COUNT with "
            "1 <= INDEX <= COUNT, e.g. 2/4 for the second of four machines")
    return shard


def shard_skip_reason(test_class: type) -> str | None:
    """Why a class is not run on this machine, for runners that cannot filter (unittest)."""
    shard = current_shard()
    if shard is None or shard.includes(test_class):
        return None
    return (f"{test_class.__qualname__} is in shard {shard_of(test_class, shard.count)}/"
            f"{shard.count}; this machine runs {shard} ({SHARD_ENVIRONMENT})")
