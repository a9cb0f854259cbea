"""Sharding a fleet of targets over several daemons: which shard serves which target.

Rendezvous (highest-random-weight) hashing: every shard scores every target name with a stable
hash and the highest score wins. Going from N to N+1 shards moves exactly the targets that the
new shard now wins, about 1/(N+1) of them, and no target moves between the old shards. The hash
is blake2b of fixed bytes, never Python's hash() (salted per process), so every daemon, every
run and every release agrees on the assignment; tests/test_shards.py pins a table of it.

Pure: the environment (the pod's name) is passed in, never read here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

MAX_SHARDS = 10_000  # a sanity bound: far above any fleet, and it keeps a typo from looping
SPEC_RE = re.compile(r"([0-9]{1,6})/([0-9]{1,6})")  # ASCII digits only
ORDINAL_RE = re.compile(r"-([0-9]{1,6})$")  # a StatefulSet pod is <name>-<ordinal>
POD_NAME_VARS = ("POD_NAME", "HOSTNAME")  # POD_NAME from the downward API wins, if set
AUTO = "auto"


class ShardError(ValueError):
    """A shard setting that cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def serves(self, name: str) -> bool:
        return shard_of(name, self.count) == self.index


def weight(name: str, index: int) -> int:
    """Shard `index`'s score for a target name: 64 bits of blake2b over "name NUL index"."""
    # Target names cannot hold NUL, so no two (name, index) pairs give the same bytes.
    digest = hashlib.blake2b(f"{name}\0{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def shard_of(name: str, count: int) -> int:
    """The shard (0 to count-1) that serves the target called `name` among `count` shards."""
    if not 1 <= count <= MAX_SHARDS:
        raise ShardError(f"the shard count must be 1 to {MAX_SHARDS}, not {count}")
    # Ties (two equal 64-bit scores) go to the lower index: a fixed rule, whatever the order.
    return max(range(count), key=lambda i: (weight(name, i), -i))


def assign(names: Iterable[str], count: int) -> dict[str, int]:
    """Every name's shard, in the order given."""
    return {name: shard_of(name, count) for name in names}


def parse_spec(spec: str) -> Shard:
    """INDEX/COUNT as a Shard; ShardError naming what is wrong."""
    match = SPEC_RE.fullmatch(spec.strip())
    if match is None:
        raise ShardError(
            "write INDEX/COUNT (shards are numbered from 0: 0/3, 1/3, 2/3) or 'auto' in a "
            "StatefulSet"
        )
    index, count = int(match.group(1)), int(match.group(2))
    if not 1 <= count <= MAX_SHARDS:
        raise ShardError(f"the shard count must be 1 to {MAX_SHARDS}, not {count}")
    if index >= count:
        raise ShardError(
            f"shard {index} does not exist among {count}: shards are numbered 0 to {count - 1}"
        )
    return Shard(index, count)


def pod_ordinal(environ: Mapping[str, str]) -> tuple[str, int]:
    """(the pod's name, its ordinal): `pg-schema-sync-3` -> 3; ShardError when there is none."""
    for var in POD_NAME_VARS:
        name = environ.get(var, "").strip()
        if name:
            match = ORDINAL_RE.search(name)
            if match is None:
                raise ShardError(
                    f"shard 'auto' takes the index from the pod name's ordinal suffix "
                    f"(pg-schema-sync-3 -> 3), but {var} is {name!r}: run it as a StatefulSet "
                    "pod or give INDEX/COUNT"
                )
            return name, int(match.group(1))
    raise ShardError(
        "shard 'auto' takes the index from the pod name (POD_NAME or HOSTNAME), and neither is "
        "set: run it as a StatefulSet pod or give INDEX/COUNT"
    )


def resolve(spec: str | None, count: int | None, environ: Mapping[str, str]) -> Shard | None:
    """The shard this process serves: None (every target), INDEX/COUNT, or 'auto' (the pod's
    ordinal of `count`). ShardError, in words for the person who set it, when unusable."""
    if spec is None or not spec.strip():
        return None
    if spec.strip() == AUTO:
        if count is None:
            raise ShardError(
                "shard 'auto' needs the number of shards: set shard_count "
                "(SCHEMA_SYNC_SHARD_COUNT) to the StatefulSet's replicas"
            )
        pod, ordinal = pod_ordinal(environ)
        if ordinal >= count:
            raise ShardError(
                f"pod {pod} is shard {ordinal}, but shard_count is {count} (shards 0 to "
                f"{count - 1}): set SCHEMA_SYNC_SHARD_COUNT to the StatefulSet's replicas"
            )
        return Shard(ordinal, count)
    shard = parse_spec(spec)
    if count is not None and count != shard.count:
        raise ShardError(
            f"it says {shard.count} shards but shard_count is {count}: make them agree, or "
            "drop shard_count"
        )
    return shard
