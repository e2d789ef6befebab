"""A measured cost of ZenML 0.98 that this project avoids.

For every artifact it stores, ZenML records which installed distribution provides the artifact's type and
materializer (`zenml.utils.source_utils._get_package_for_module`). Each call rebuilds Python's full map of
installed packages (`importlib.metadata.packages_distributions()`), about 2 seconds in this project's virtual
environment, and a training run makes several such calls: about 10 s of a run, whatever the data size
(benchmarks/pipelines.py). Installed packages do not change while a run is in progress, so the answer is cached
per module name. Remove this when ZenML caches it itself (checked by tests/test_zenml_tuning.py).
"""

from __future__ import annotations

import functools


def cache_package_lookups() -> None:
    """Idempotent: wrap ZenML's per-module package lookup in a cache."""
    from zenml.utils import source_utils

    lookup = source_utils._get_package_for_module
    if not hasattr(lookup, "cache_info"):
        source_utils._get_package_for_module = functools.cache(lookup)
