"""The comparison report's reading (measurement/report.py): a few sentences generated from the measurements."""

from __future__ import annotations

from typing import Any

from measurement.report_tables import load_level_keys


def reading(report: dict[str, Any]) -> list[str]:
    """A short reading of the measurements, generated from them: which backend for traffic, which for tracking,
    what differs, and the caveats that limit the figures."""
    results, meta = report["results"], report["meta"]
    served = [r for r in results if r.get("serving")]
    lines: list[str] = []
    levels = load_level_keys(report)
    if served and levels:
        top = levels[-1]
        by_rps = sorted(served, key=lambda r: -(r["serving"]["load"].get(top, {}).get("throughput_rps") or 0))
        by_p50 = sorted(served, key=lambda r: r["serving"]["load"].get(levels[0], {}).get("p50_ms") or float("inf"))
        best = by_rps[0]
        figure = best["serving"]["load"][top]
        bare = (report["baselines"].get("bare_http") or {}).get("load", {}).get(top, {})
        versus = f", {figure['throughput_rps'] / bare['throughput_rps']:.2f}x the bare HTTP server" if bare else ""
        lines.append(
            f"For traffic: `{best['stack']}` ({best['serving']['backend']}) served the most requests per second at "
            f"concurrency {top[1:]} ({figure['throughput_rps']:.0f}/s{versus}); the lowest one-request latency was "
            f"`{by_p50[0]['stack']}`'s ({by_p50[0]['serving']['load'][levels[0]]['p50_ms']:.1f} ms p50)."
        )
        slow = [r for r in served if r["serving"].get("pipeline_runs_per_request")]
        if slow:
            lines.append(
                "Recorded pipeline runs per request served: "
                + ", ".join(f"`{r['stack']}` {r['serving']['pipeline_runs_per_request']:.2f}" for r in slow)
                + " (ZenML's deployer with `record_every` set in configs/deployment.yaml): each costs a run in the "
                "ZenML store."
            )
    tracked = [r["stack"] for r in results if (r.get("records") or {}).get("mlflow")]
    plain = [r["stack"] for r in results if r.get("available") and r["stack"] not in tracked]
    if tracked:
        lines.append(
            "For experiment tracking and a registry UI: "
            + ", ".join(f"`{s}`" for s in tracked)
            + " (MLflow runs, registered versions, the `champion` alias following production)"
            + (
                f"; {', '.join(f'`{s}`' for s in plain)} keep everything in ZenML's Model Control Plane."
                if plain
                else "."
            )
        )
    checks = report["checks"]
    if checks.get("metrics_identical") is not None:
        lines.append(
            "Same model everywhere: the metrics are identical on every stack and called directly."
            if checks["metrics_identical"]
            else "The metrics differ between stacks (see the answers table): the same seed and data should not."
        )
    trained = [r for r in results if r.get("training")]
    direct = report["baselines"].get("direct", {}).get("training_seconds")
    if trained and direct:
        overhead = [r["training"]["wall_seconds"] / direct for r in trained if r["training"].get("wall_seconds")]
        if overhead:
            lines.append(
                f"Orchestration costs: a training run took {min(overhead):.1f}x to {max(overhead):.1f}x the time of "
                "the same steps called directly (records, artifacts, caching)."
            )
    unavailable = [r for r in results if not r.get("available")]
    lines += [f"`{r['stack']}` was not measured: {r.get('reason', 'unavailable')}" for r in unavailable]
    caveats = []
    if meta.get("quick"):
        smallest = min(level["requests"] for level in meta["size"]["load"])
        caveats.append(
            f"--quick: percentiles come from as few as {smallest} requests per level: indicative only; run without "
            "--quick for figures to quote"
        )
    uris = [
        (r["stack"], r["records"]["mlflow"].get("tracking_uri"))
        for r in results
        if (r.get("records") or {}).get("mlflow")
    ]
    shared = {uri for _, uri in uris if sum(1 for _, other in uris if other == uri) > 1}
    for uri in sorted(shared):
        stacks = ", ".join(f"`{s}`" for s, other in uris if other == uri)
        caveats.append(f"{stacks} share one MLflow database ({uri}): their MLflow run and version counts add up")
    lines += [f"Caveat: {caveat}." for caveat in caveats]
    return lines
