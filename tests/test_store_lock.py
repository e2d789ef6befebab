"""The store lock of one model never sees, waits for or breaks the lock of another whose name it prefixes."""

from __future__ import annotations

from stacks.store_lock import LOCK_PREFIX, lock_holder, store_lock


def test_a_lock_is_found_by_its_exact_name_only(zenml_client):
    other = zenml_client.create_tag(name=f"{LOCK_PREFIX}churn_v2")
    try:
        assert lock_holder(zenml_client, f"{LOCK_PREFIX}churn") is None  # a prefix of the other lock's name
        assert lock_holder(zenml_client, f"{LOCK_PREFIX}churn_v2").id == other.id
        # Taking `churn`'s lock, even one treated as stale at once, leaves `churn_v2`'s in place.
        with store_lock("churn", wait=5, stale_after=0.0):
            assert lock_holder(zenml_client, f"{LOCK_PREFIX}churn") is not None
        assert lock_holder(zenml_client, f"{LOCK_PREFIX}churn_v2").id == other.id
    finally:
        zenml_client.delete_tag(other.id)
