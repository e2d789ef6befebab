"""The ZenML workaround in workflows/zenml_tuning.py: still needed, still working."""

import inspect

from zenml.utils import source_utils

from workflows.zenml_tuning import cache_package_lookups


def test_zenml_still_rebuilds_the_package_map_per_lookup():
    """If this fails, ZenML caches the lookup itself and workflows/zenml_tuning.py can go."""
    source = inspect.getsource(inspect.unwrap(source_utils._get_package_for_module))
    assert "packages_distributions()" in source


def test_lookup_is_cached_and_answers_alike():
    original = inspect.unwrap(source_utils._get_package_for_module)
    cache_package_lookups()
    cache_package_lookups()  # idempotent: wrapped once
    cached = source_utils._get_package_for_module
    assert inspect.unwrap(cached) is original
    for module in ("pandas.core.frame", "sklearn.pipeline", "zenml.materializers", "lifecycle.metrics"):
        assert cached(module) == original(module)
    hits = cached.cache_info().hits
    assert cached("pandas.core.frame") == "pandas"
    assert cached.cache_info().hits == hits + 1  # the second lookup of a module is answered from the cache
