"""The comparison report's decisions on synthetic measurements (no stack, no server): a difference is named only
beyond the run's own noise, "Which to pick" follows the measured features, the charts have linear axes that do
not overlap, and the progress line counts a stack only once it has finished. tests/test_compare.py runs the real
comparison."""

from __future__ import annotations

import math

import pytest

from measurement.noise import Spread, chance_of_separation, compare_spreads, rank, rule
from measurement.report import render_html, render_markdown, summarize
from measurement.report_choice import choice
from measurement.report_reading import reading

MARGIN = 0.1


def test_overlapping_rounds_are_no_measurable_difference():
    # the case: 128/s against 101/s, but the rounds of the two overlap
    full, bentoml = Spread.of([128, 95, 140, 110, 102]), Spread.of([101, 120, 99, 131, 97])
    difference = compare_spreads(full, bentoml, higher_is_better=True, min_share=MARGIN)
    assert not difference.measurable and "overlap" in difference.why


def test_separated_rounds_beyond_the_margin_are_named():
    fast, slow = Spread.of([150, 155, 160, 148, 152]), Spread.of([80, 85, 90, 82, 88])
    difference = compare_spreads(slow, fast, higher_is_better=True, min_share=MARGIN)
    assert difference.measurable and difference.why.startswith("worse in every round")
    assert difference.ratio == pytest.approx(85 / 152)
    assert compare_spreads(fast, slow, True, MARGIN).why.startswith("better")
    # for latency, lower is better: the lower one is the better one
    assert compare_spreads(Spread.of([5, 6, 5.5]), Spread.of([9, 10, 11]), False, MARGIN).why.startswith("better")


def test_separated_but_within_the_margin_or_one_round_is_not_named():
    close = compare_spreads(Spread.of([100, 101, 102]), Spread.of([104, 105, 106]), True, MARGIN)
    assert not close.measurable and "within the 10% margin" in close.why
    single = compare_spreads(Spread.of([100]), Spread.of([200]), True, MARGIN)
    assert not single.measurable and "single round" in single.why


def test_chance_of_separation_between_equal_servers():
    assert chance_of_separation(5, 5) == pytest.approx(2 / 252)
    assert chance_of_separation(3, 3) == pytest.approx(0.1)
    assert "1 rounds" not in rule(1, MARGIN) and "no serving difference is named" in rule(1, MARGIN)
    assert "0.8% of the time" in rule(5, MARGIN)


def test_spread_ignores_missing_rounds_and_refuses_none():
    assert Spread.of([1.0, math.nan, 3.0]).values == (1.0, 3.0)
    assert Spread.of([10, 20, 30]).text(0, "/s") == "20/s (10–30 over 3 rounds)"
    with pytest.raises(ValueError, match="no measured values"):
        Spread.of([math.nan])


def test_rank_puts_the_noise_with_the_best():
    ranking = rank(
        {
            "a": Spread.of([100, 110, 105]),
            "b": Spread.of([104, 112, 99]),
            "c": Spread.of([50, 55, 52]),
        },
        higher_is_better=True,
        min_share=MARGIN,
    )
    assert ranking.best in ("a", "b") and ranking.tied == [({"a", "b"} - {ranking.best}).pop()]
    assert [name for name, _ in ranking.behind] == ["c"]


def _load(throughputs: list[float], p50s: list[float]) -> dict:
    rounds = [{"throughput_rps": t, "p50_ms": p, "p95_ms": p * 1.5} for t, p in zip(throughputs, p50s, strict=True)]
    pooled = {
        "requests": 10 * len(rounds),
        "ok": 10 * len(rounds),
        "errors": 0,
        "p50_ms": sorted(p50s)[len(p50s) // 2],
        "p95_ms": max(p50s) * 1.5,
        "p99_ms": max(p50s) * 2,
        "throughput_rps": sum(throughputs) / len(throughputs),
        "rounds": rounds,
    }
    return {"c1": pooled, "c16": {**pooled, "concurrency": 16}}


def _stack(name: str, backend: str, load: dict, *, mlflow: bool, prometheus: bool, docs: int, memory: float) -> dict:
    records: dict = {"mcp": {"versions": [1], "production": 1, "metadata_keys": [], "artifacts": []}}
    if mlflow:
        records["mlflow"] = {
            "tracking_uri": f"sqlite:///{name}/mlflow.db",
            "experiment": "e",
            "runs": 1,
            "params": 12,
            "metrics": 30,
            "registered_versions": [1, 2],
            "registered": [{"version": 1, "mcp_version": "1"}, {"version": 2, "mcp_version": "1"}],
            "aliases": {"champion": {"version": 2, "mcp_version": "1"}},
        }
    url = "http://127.0.0.1:8400"
    return {
        "stack": name,
        "available": True,
        "errors": {},
        "components": {"model deployer": backend},
        "integrations": {"mlflow": ["mlflow>=2"]} if mlflow else {},
        "training": {
            "run": f"{name}-run",
            "wall_seconds": 6.0,
            "steps": {"train_model": 1.0},
            "metrics": {"mae": 1.0},
            "model_version": 1,
            "promoted": True,
        },
        "records": records,
        "serving": {
            "backend": backend,
            "url": url,
            "predict_url": url + "/predict",
            "health_url": url + "/health",
            "server": name,
            "model_version": "1",
            "deploy_seconds": 9.0,
            "seconds_to_ready": 8.0,
            "parity_rows": 2,
            "predictions": [1.0, 2.0],
            "difference_to_in_process": 0.0,
            "request_shape": ["records"],
            "load": load,
            "rss_mb_before": memory,
            "rss_mb_after": memory,
            "probes": {
                "health": {"status": 200},
                "metrics": {"status": 200 if prometheus else 404, "prometheus": prometheus},
                "docs": {"status": docs},
                "root": {"status": 200},
            },
            "pipeline_runs_per_request": 0.0,
        },
    }


def _report(stacks: list[dict]) -> dict:
    baselines = {
        "direct": {
            "training_seconds": 1.5,
            "training_steps": {"train_model": 0.8},
            "monitoring_seconds": 1.0,
            "monitoring_steps": {},
            "metrics": {"mae": 1.0},
        },
        "in_process": {"load": {"c1": _load([400, 410, 405], [2.0, 2.1, 2.2])["c1"]}},
        "bare_http": {"load": _load([300, 310, 305], [3.0, 3.1, 3.2]), "rss_mb_after": 200},
    }
    meta = {
        "data": {
            "source": "bike.csv",
            "training_rows": 2700,
            "batch_rows": 300,
            "target": "cnt",
            "seed": 42,
            "model_name": "m",
        },
        "quick": False,
        "size": {"load": [{"concurrency": 1, "requests": 10}, {"concurrency": 16, "requests": 10}], "rounds": 3},
        "machine": {"cpus": 2, "python": "CPython 3.11", "platform": "Linux", "versions": {"zenml": "0.98.0"}},
        "seconds": 60.0,
        "workspace": "/tmp/ws",
        "inspect_prefixes": {s["stack"]: f"ZENML_CONFIG_PATH=/tmp/ws/stacks/{s['stack']}/zenml" for s in stacks},
        "min_difference": MARGIN,
        "generated": "now",
    }
    return summarize(stacks, baselines, meta)


def _four(full_rounds: list[float], bentoml_rounds: list[float]) -> dict:
    p50 = [8.0, 8.5, 9.0]
    return _report(
        [
            _stack(
                "local",
                "zenml",
                _load([150, 155, 160], [6.0, 6.2, 6.4]),
                mlflow=False,
                prometheus=False,
                docs=200,
                memory=420,
            ),
            _stack(
                "mlflow",
                "mlflow",
                _load([80, 85, 90], [12.0, 12.5, 13.0]),
                mlflow=True,
                prometheus=False,
                docs=200,
                memory=670,
            ),
            _stack(
                "bentoml", "bentoml", _load(bentoml_rounds, p50), mlflow=False, prometheus=True, docs=404, memory=590
            ),
            _stack("full", "bentoml", _load(full_rounds, p50), mlflow=True, prometheus=True, docs=404, memory=590),
        ]
    )


def test_reading_says_no_measurable_difference_when_every_server_is_within_the_noise():
    rounds = [100, 130, 110]
    report = _report(
        [
            _stack(name, backend, _load(rounds, [8.0, 9.0, 8.5]), mlflow=False, prometheus=False, docs=200, memory=400)
            for name, backend in (("bentoml", "bentoml"), ("full", "bentoml"))
        ]
    )
    lines = reading(report)
    assert lines[0].startswith("A serving difference is named only beyond this run's own noise: every one of 3")
    assert "by chance 10.0% of the time" in lines[0]
    assert lines[1].startswith("Traffic (requests/s at concurrency 16): no measurable difference: `bentoml`")
    assert any("run the same bentoml server" in line and "as they should" in line for line in lines)
    assert not any("measurably behind" in line for line in lines)


def test_reading_names_a_difference_only_beyond_the_noise():
    lines = reading(_four(full_rounds=[128, 100, 140], bentoml_rounds=[101, 125, 98]))
    traffic = next(line for line in lines if line.startswith("Traffic"))
    assert traffic.startswith("Traffic (requests/s at concurrency 16): `local` 155/s (150–160 over 3 rounds)")
    assert "measurably behind" in traffic and "`mlflow` 85/s" in traffic
    # full 128/s and bentoml 101/s overlap: both are behind local, neither is named ahead of the other
    assert "`full` and `bentoml` run the same bentoml server" not in traffic
    assert any(
        line.startswith("`bentoml` and `full` run the same bentoml server") and "as they should" in line
        for line in lines
    )
    assert any(line.startswith("Floor:") and "+1.0 ms" in line for line in lines)  # bare 3.1 ms - floor 2.1 ms
    numbering = "MLflow numbers its versions on its own; one ZenML version is registered in MLflow more than once: "
    assert any(line.startswith(numbering + "on `mlflow`, MLflow v1 = ZenML v1, MLflow v2 = ZenML v1") for line in lines)
    assert any(line.startswith("Each stack started from an empty store of its own") for line in lines)


def test_reading_says_when_mlflow_numbers_match_zenml():
    report = _four([100, 101, 102], [100, 101, 102])
    for result in report["results"]:
        if "mlflow" in result["records"]:
            result["records"]["mlflow"]["registered"] = [{"version": 1, "mcp_version": "1"}]
            result["records"]["mlflow"]["aliases"] = {"champion": {"version": 1, "mcp_version": "1"}}
    lines = [line for line in reading(report) if line.startswith("MLflow numbers")]
    assert lines == [
        "MLflow numbers its versions on its own; they match here because the stack's MLflow database started "
        f"empty: on `{stack}`, MLflow v1 = ZenML v1; `champion` → MLflow v1."
        for stack in ("mlflow", "full")
    ]


def test_reading_flags_drift_when_the_same_server_differs():
    lines = reading(_four(full_rounds=[200, 205, 210], bentoml_rounds=[100, 105, 110]))
    assert any("run the same bentoml server, yet differ measurably" in line for line in lines)


def test_which_to_pick_follows_the_measured_features():
    lines = choice(_four(full_rounds=[128, 100, 140], bentoml_rounds=[101, 125, 98]))
    text = "\n".join(lines)
    assert "An experiment-tracking UI and a model registry with aliases: `mlflow`, `full`" in text
    assert "12 params and 30 metrics" in text and "`local`, `bentoml` keep runs" in text
    assert "Prometheus metrics from the model server (`GET /metrics`): `bentoml`, `full` (not: `local` 404" in text
    assert "An API docs page on the model server (`GET /docs` → 200): `local`, `mlflow`" in text
    assert "The lowest one-request latency: `local`" in text
    assert "The most requests/s at concurrency 16: `local`" in text
    assert "The smallest server (memory of all its processes after the load): `local` 420 MiB" in text
    assert "The least to install: `local`, `bentoml` (ZenML alone)" in text


def test_which_to_pick_says_when_speed_does_not_decide():
    same = _load([100, 130, 110], [8.0, 9.0, 8.5])
    report = _report(
        [
            _stack("a", "zenml", same, mlflow=False, prometheus=False, docs=200, memory=400),
            _stack("b", "bentoml", same, mlflow=True, prometheus=True, docs=404, memory=410),
        ]
    )
    text = "\n".join(choice(report))
    assert "The lowest one-request latency: does not decide in this run" in text
    assert "The smallest server: no stack stands out" in text


def test_served_own_version_is_checked():
    report = _four([100, 101, 102], [100, 101, 102])
    assert report["checks"]["served_own_version"] == {s: True for s in ("local", "mlflow", "bentoml", "full")}
    stale = _stack("stale", "zenml", _load([1, 2, 3], [1, 2, 3]), mlflow=False, prometheus=False, docs=200, memory=1)
    stale["training"]["model_version"], stale["records"]["mcp"]["versions"] = 3, [1, 2, 3]
    stale["serving"]["model_version"] = "1"  # the case: versions piled up, the first one served
    report = _report([stale])
    assert report["checks"]["served_own_version"] == {"stale": False}
    assert "v1 (NOT the one trained here)" in render_markdown(report)


def test_serving_charts_have_linear_axes_from_zero_that_do_not_overlap():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from measurement.report_plots import BASELINES, _level_panels

    report = _four([128, 100, 140], [101, 125, 98])
    served = [(r["stack"], r["serving"]["load"]) for r in report["results"]]
    served += [(label, report["baselines"][key]["load"]) for key, label in BASELINES]
    for key in ("p50_ms", "throughput_rps"):
        figure = _level_panels(plt, served, ["c1", "c16"], key, "unit")
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        boxes = [axis.get_tightbbox(renderer) for axis in figure.axes]
        assert len(boxes) == 2 and not boxes[0].overlaps(boxes[1]), boxes
        for axis in figure.axes:
            assert axis.get_xscale() == "linear" and axis.get_xlim()[0] == 0
        plt.close(figure)
    page = render_html(report)
    assert page.count("<svg") == 3 and "log scale" not in page


def test_progress_counts_a_stack_only_once_it_has_finished(capsys):
    from cli.project import comparison_progress

    progress = comparison_progress(["local", "full"])
    progress("data", "2700 training rows")
    progress("local", "training")
    progress("full", "serving")  # the last stack still runs: not 2/2
    progress("local", "finished in 90 s (measured)")
    progress("full", "finished in 80 s (measured)")
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("] ", 1)[1].split(" stacks done")[0] for line in lines] == [
        "[░░░░░░░░░░░░] 0/2",
        "[░░░░░░░░░░░░] 0/2",
        "[░░░░░░░░░░░░] 0/2",
        "[██████░░░░░░] 1/2",
        "[████████████] 2/2",
    ]
    assert lines[2].endswith("stacks done · full: serving")
