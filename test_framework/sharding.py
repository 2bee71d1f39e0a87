"""Split a suite deterministically across machines: ``TEST_FRAMEWORK_SHARD=2/4``.

A test class belongs to shard ``crc32("<module>.<Class>") % count + 1``, so
every machine computes the same split without talking to the others, and a
class's tests stay together (they share a loop and a connection). Each shard
provisions its own databases as usual.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from test_framework.config import ENVIRONMENT_KEYS, run_setting


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


def current_shard() -> Shard | None:
    """Return this machine's shard (``TEST_FRAMEWORK_SHARD``, "index/count"); None when unset."""
    setting = run_setting("shard")
    return None if setting.value is None else Shard(*setting.value)


def shard_skip_reason(test_class: type) -> str | None:
    """Why a class is not run on this machine, for runners that cannot filter (unittest)."""
    shard = current_shard()
    if shard is None or shard.includes(test_class):
        return None
    return (f"{test_class.__qualname__} is in shard {shard_of(test_class, shard.count)}/"
            f"{shard.count}; this machine runs {shard} ({ENVIRONMENT_KEYS['shard']})")
