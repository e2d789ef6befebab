"""A lock held in the ZenML store itself, so that clients on different machines that share nothing but the
ZenML server still take turns (a file lock only orders the processes of one machine).

How: the lock is a ZenML tag named `mlops-lock-<name>`. Creating a tag is one INSERT under the store's unique
constraint on tag names, so when several clients create it at the same moment exactly one succeeds; the others
are told it exists (EntityExistsError), wait and try again. The holder deletes it, by its id, when done.

A holder that died leaves its tag behind. A tag older than `stale_after` seconds is taken as abandoned and
deleted, by the id that was read, so of two clients that find the same stale lock only one deletes it, and they
race fairly for the next. (The store stamps the tag's creation time and this client's clock reads its age, so
clocks must agree to well within `stale_after`.) The guarantee therefore holds for critical sections shorter
than `stale_after`; keep it well above the longest one (a promotion takes seconds).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

from lifecycle.errors import LifecycleError

LOCK_PREFIX = "mlops-lock-"


class LockBusy(LifecycleError):
    """Another client held the lock for longer than this one was willing to wait."""


def _age_seconds(created: datetime | None, now: datetime) -> float:
    if created is None:
        return 0.0
    if created.tzinfo is None:  # the store records UTC without a zone
        created = created.replace(tzinfo=timezone.utc)
    return (now - created).total_seconds()


def lock_holder(client: Any, tag_name: str) -> Any | None:
    """The tag holding the lock `tag_name`, by its exact name, or None. Listed rather than fetched: ZenML's
    `get_tag` falls back to a name prefix (the lock of model `a` would find the lock of model `a_b`), and it
    counts and then reads in two queries, so a lock released in between made it fail with an IndexError."""
    page = client.list_tags(name=f"equals:{tag_name}", size=1)
    return page.items[0] if page.items else None


@contextlib.contextmanager
def store_lock(
    name: str,
    wait: float = 600.0,
    stale_after: float = 900.0,
    poll: float = 0.25,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the store-wide lock `name` inside the block (see the module's docstring)."""
    from zenml.client import Client
    from zenml.exceptions import EntityExistsError

    client = Client()
    tag_name = f"{LOCK_PREFIX}{name}"
    deadline = time.monotonic() + wait
    told = False
    while True:
        with contextlib.suppress(EntityExistsError):  # held by another client: see by whom and for how long
            held = client.create_tag(name=tag_name)
            break
        other = lock_holder(client, tag_name)
        if other is None:
            continue  # released in between: try again at once
        age = _age_seconds(other.created, datetime.now(timezone.utc))
        if age > stale_after:
            with contextlib.suppress(KeyError):
                client.delete_tag(other.id)  # by id: a lock taken since then is not touched
            continue
        if time.monotonic() > deadline:
            raise LockBusy(
                f"the store lock `{tag_name}` has been held for {age:.0f} s (by another run or machine) and this "
                f"run waited {wait:.0f} s for it. Fix: try again when that run ends; if no run holds it, "
                f"`zenml tag delete {tag_name}` releases it."
            )
        if on_wait is not None and not told:
            on_wait(f"waiting for the store lock `{tag_name}` (held by another run for {age:.0f} s)")
            told = True
        time.sleep(poll + random.uniform(0, poll))  # jitter: waiters do not retry in lockstep
    try:
        yield
    finally:
        with contextlib.suppress(KeyError):
            client.delete_tag(held.id)
