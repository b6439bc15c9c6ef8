"""Retrain and bless end to end through ``edgepipe run``: the default pipeline on the embedded sensors, then on
similar new data (blessed, exported) and on drifted new data (refused, exit 4, the comparison on stderr and in
the report), each compared with the last exported bundle found through the metadata store.

The new data are copies of ``data/default/sensors.csv`` written to tmp: *similar* adds 5% noise; *drifted* moves
the temperature of every machine's first 60% (its train split) by 3 standard deviations, as a miscalibrated
sensor would, so the candidate learns a wrong normal while the evaluation data are as before. Small settings
(2 epochs, float32 + int8_ptq): each run takes well under a minute.
"""
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgepipe.pipeline.metadata import MetadataStore

REPO = Path(__file__).resolve().parents[1]
SENSORS = REPO / "data" / "default" / "sensors.csv"
CHANNELS = ("vibration", "temperature", "current")
SMALL = ["training.epochs=2", "convert.variants=[float32, int8_ptq]", "prune.enabled=false", "qat.enabled=false",
         "cluster.enabled=false", "evaluate.latency_runs=5", "retrain.baseline=last", "retrain.max_regression=0.05"]


def edgepipe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgepipe", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600)


def run(root: Path, output: Path, *overrides: str) -> subprocess.CompletedProcess:
    args = ["run", "--root", str(root), "--output", str(output)]
    for override in [*SMALL, *overrides]:
        args += ["--set", override]
    return edgepipe(*args)


def write_copy(path: Path, change) -> Path:
    rows = list(csv.DictReader(SENSORS.open()))
    change(rows, {c: float(np.std([float(r[c]) for r in rows])) for c in CHANNELS})
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def similar(rows, std):
    rng = np.random.default_rng(1)
    for row in rows:
        for c in CHANNELS:
            row[c] = f"{float(row[c]) + rng.normal(0, 0.05 * std[c]):.4f}"


def drifted(rows, std):
    by_machine: dict[str, list[dict]] = {}
    for row in rows:
        by_machine.setdefault(row["machine"], []).append(row)
    for series in by_machine.values():
        series.sort(key=lambda r: r["timestamp"])
        for row in series[: int(0.6 * len(series))]:  # the train split (data.split train 0.6, by time)
            row["temperature"] = f"{float(row['temperature']) + 3 * std['temperature']:.4f}"


def node(store: MetadataStore, run_id: str, name: str) -> dict:
    return next(e for e in store.executions(run_id) if e["node"] == name)


@pytest.fixture(scope="module")
def retrains(tmp_path_factory):
    base = tmp_path_factory.mktemp("retrain")
    root = base / "root"
    first = run(root, base / "first")
    assert first.returncode == 0, first.stderr
    second = run(root, base / "similar", f"data.source={write_copy(base / 'similar.csv', similar)}")
    assert second.returncode == 0, second.stderr
    third = run(root, base / "drifted", f"data.source={write_copy(base / 'drifted.csv', drifted)}")
    store = MetadataStore(root / "metadata.sqlite")
    runs = [r["id"] for r in reversed(store.runs(3))]
    return base, root, store, runs, third


def test_the_first_export_has_no_baseline(retrains):
    base, _, _, _, _ = retrains
    blessing = json.loads((base / "first" / "bundle.json").read_text())["blessing"]
    assert blessing["blessed"] and blessing["baseline_bundle"] is None and "first export" in blessing["reason"]


def test_a_retrain_on_similar_data_is_blessed_against_the_last_export(retrains):
    base, root, store, (first, second, _), _ = retrains
    blessing = json.loads((base / "similar" / "bundle.json").read_text())["blessing"]
    exported = next(a for a in node(store, first, "export_bundle")["artifacts"] if a["name"] == "bundle")
    assert blessing["blessed"] and blessing["baseline_run"] == first
    assert blessing["baseline_bundle"] == str(Path(exported["uri"]).resolve())
    assert abs(blessing["regression"]) <= 0.05
    # the baseline scored by the runtime on the first run's own data is that run's pipeline F1
    first_f1 = json.loads((base / "first" / "bundle.json").read_text())["blessing"]["candidate_metric"]
    assert blessing["baseline_metric"] == pytest.approx(first_f1, abs=0.1)
    # in the metadata store: the node's metrics, and the bundle's lineage holds the blessing
    bless = node(store, second, "bless_model")
    assert json.loads(bless["metrics"])["blessed"] is True
    bundle = next(a for a in node(store, second, "export_bundle")["artifacts"] if a["name"] == "bundle")
    assert "ModelBlessing" in {a["type"] for a in store.lineage(bundle["id"])}
    shown = edgepipe("show", second, "--root", str(root))
    assert shown.returncode == 0 and "bless_model" in shown.stdout and '"blessed": true' in shown.stdout


def test_a_retrain_on_drifted_data_is_refused_with_the_comparison(retrains):
    base, root, store, (_, second, third), result = retrains
    assert result.returncode == 4, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("edgepipe: error: ") and "retrain: candidate 'int8_ptq' f1 " in line
    assert "is worse than the baseline bundle's" in line and "retrain.max_regression 0.05; nothing exported" in line
    assert not (base / "drifted").exists()
    doc = json.loads(Path(next(a["uri"] for a in node(store, third, "bless_model")["artifacts"])).joinpath(
        "blessing.json").read_text())
    assert not doc["blessed"] and doc["regression"] > 0.05 and doc["baseline"]["run"] == second
    drift = doc["baseline"]["drift"]
    assert drift["largest_shift_channel"] == "temperature" and drift["channels"]["temperature"]["center_shift"] > 2
    report = Path(next(a["uri"] for a in node(store, third, "render_report")["artifacts"])) / "report.html"
    page = report.read_text()
    assert "Retrain: blessing against the last export" in page and "not blessed: export refused" in page


def test_a_baseline_that_is_not_a_bundle_is_a_config_error(tmp_path):
    result = run(tmp_path / "root", tmp_path / "out", f"retrain.baseline={tmp_path}")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    # the value came from --set, so the line names that --set, not default.yaml (QA 23 F7)
    assert result.stderr.strip() == (f"edgepipe: error: --set retrain.baseline={tmp_path}: config key "
                                     f"'retrain.baseline': '{tmp_path}' is not an exported bundle directory (no "
                                     "bundle.json with schema_version and task); use last, a bundle path or null")
    assert not (tmp_path / "root").exists()  # refused while building, before anything ran


def test_what_the_last_bundle_says_up_front_is_checked_before_anything_runs(retrains, tmp_path):
    """QA 23 N10: ``last`` resolved at build, its bundle.json read: another window size is refused at once (exit 2),
    naming the --set, the bundle and its run, and no run is recorded."""
    base, root, store, (_, second, _), _ = retrains
    result = run(root, tmp_path / "out", "window.size=16")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    last = next(a for a in node(store, second, "export_bundle")["artifacts"] if a["name"] == "bundle")
    assert result.stderr.strip() == (
        "edgepipe: error: --set window.size=16: config key 'window.size': 16 differs from the baseline bundle's 32: "
        f"the models cannot be compared on the same windows (baseline bundle {Path(last['uri']).resolve()}, run "
        f"{second})")
    assert len(MetadataStore(root / "metadata.sqlite").runs(10)) == 3 and not (tmp_path / "out").exists()


def test_a_bundle_of_another_task_is_refused_before_anything_trains(retrains, tmp_path):
    """QA 23 F5: the digits cnn against the sensors' anomaly bundle (and the reverse is the same check)."""
    base = retrains[0]
    result = edgepipe("run", "cnn", "--root", str(tmp_path / "root"), "--output", str(tmp_path / "out"),
                      "--set", f"retrain.baseline={base / 'first'}")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.strip() == (
        f"edgepipe: error: --set retrain.baseline={base / 'first'}: config key 'retrain.baseline': the baseline "
        "bundle's task is anomaly_detection (autoencoder), this pipeline's is classification: not comparable "
        f"(baseline bundle {(base / 'first').resolve()})")
    assert not (tmp_path / "root" / "metadata.sqlite").exists()


def test_a_template_without_a_baseline_scorer_refuses_the_retrain_keys(tmp_path):
    result = edgepipe("run", "dqn", "--root", str(tmp_path / "root"), "--set", "retrain.baseline=last")
    assert result.returncode == 2
    assert "config key 'retrain.baseline' is not used by template 'reinforcement'" in result.stderr


def test_a_supervised_baseline_scores_as_the_pipeline_evaluated_it(tmp_path):
    """The digits CNN exported, then the same config blessed against that bundle: every node up to evaluate is a
    cache hit, so the baseline scored through its bundle must equal the candidate's own evaluation exactly."""
    small = ["training.epochs=2", "convert.variants=[float32, int8_ptq]", "prune.enabled=false",
             "qat.enabled=false", "cluster.enabled=false", "evaluate.latency_runs=5"]
    args = ["run", "cnn", "--root", str(tmp_path / "root")]
    for override in small:
        args += ["--set", override]
    first = edgepipe(*args, "--output", str(tmp_path / "first"))
    assert first.returncode == 0, first.stderr
    again = edgepipe(*args, "--output", str(tmp_path / "again"), "--set", f"retrain.baseline={tmp_path / 'first'}",
                     "--set", "retrain.max_regression=0")
    assert again.returncode == 0, again.stderr
    blessing = json.loads((tmp_path / "again" / "bundle.json").read_text())["blessing"]
    shipped = json.loads((tmp_path / "first" / "bundle.json").read_text())["primary_variant"]
    rows = {r["variant"]: r for r in json.loads((tmp_path / "first" / "variants.json").read_text())}
    assert blessing["metric_name"] == "accuracy" and blessing["candidate_variant"] == shipped
    assert blessing["baseline_metric"] == pytest.approx(rows[shipped]["metric"], abs=1e-12)
    assert blessing["blessed"] and blessing["regression"] == pytest.approx(0.0, abs=1e-12)
