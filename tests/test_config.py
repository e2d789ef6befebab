from pathlib import Path

import pytest
from conftest import DEMO_CONFIG

from lifecycle.config import PROJECT_ROOT, apply_overrides, load_config, model_name_from_path
from lifecycle.errors import ConfigError


def test_default_config_describes_the_bike_data():
    config = load_config(DEMO_CONFIG)
    assert config.dataset.target == "cnt"
    assert config.dataset.task == "regression"
    assert Path(config.dataset.path).is_absolute() and Path(config.dataset.path).is_file()
    assert {"casual", "registered"} <= set(config.dataset.drop_columns)
    assert [t.column for t in config.dataset.time_columns] == ["dteday", "hr"]


def test_unknown_key_is_reported_with_its_location(tmp_path):
    text = DEMO_CONFIG.read_text().replace("test_fraction:", "test_fractoin:")
    path = tmp_path / "typo.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"split\.test_fractoin"):
        load_config(path)


def test_missing_config_file_names_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="--config"):
        load_config(tmp_path / "nope.yaml")


def test_metric_must_fit_the_task(tmp_path):
    path = tmp_path / "bad_metric.yaml"
    path.write_text(DEMO_CONFIG.read_text().replace("metric: rmse", "metric: f1_macro"))
    with pytest.raises(ConfigError, match="f1_macro"):
        load_config(path)


def test_other_data_starts_from_a_clean_dataset_description(tmp_path):
    data = tmp_path / "Customer Churn.csv"
    data.write_text("a,b\n1,2\n")
    config = apply_overrides(load_config(DEMO_CONFIG), data=str(data), target="b", task="classification")
    assert config.dataset.path == str(data.resolve())
    assert config.dataset.drop_columns == [] and config.dataset.segment_columns == []
    assert config.model.name == "customer_churn"
    assert config.promotion.metric is None  # rmse belongs to the bike config's regression task
    assert config.training.seed == load_config(DEMO_CONFIG).training.seed


def test_other_data_without_target_is_an_actionable_error(tmp_path):
    data = tmp_path / "x.csv"
    data.write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match="--target"):
        apply_overrides(load_config(DEMO_CONFIG), data=str(data))


def test_same_data_keeps_the_config_columns():
    config = apply_overrides(
        load_config(DEMO_CONFIG), data=str(PROJECT_ROOT / "data" / "bike_sharing_hourly.csv.gz"), seed=3
    )
    assert config.dataset.drop_columns == ["casual", "registered"]
    assert config.training.seed == 3 and config.model.name == "bike_demand"


def test_model_name_from_path():
    assert model_name_from_path("/x/Churn 2024.csv.gz") == "churn_2024"
    assert model_name_from_path("--.csv") == "model"


def test_the_projects_own_config_loads_and_its_data_passes_the_checks():
    """configs/training.yaml, whatever data it describes (the demo's here; a generated project's own data)."""
    from lifecycle.validation import validate_file

    config = load_config()
    report = validate_file(config.dataset)
    assert report.rows_out > 0 and config.model.name
