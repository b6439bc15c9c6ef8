"""Real tables end to end through ``edgepipe run`` / ``predict`` / ``serve`` (issue 15), on the first 2,000 rows of
TFX's Chicago taxi sample as it is: blanks in numeric columns, string columns ``payment_type`` and ``company``.

* the mlp regression on ``tips`` trains on the transformed table (finite loss), ships an int8 bundle carrying the
  transform and the train schema, and predicts raw CSV rows with blanks and an unseen company, with a skew report;
* without imputation the NaN loss stops training at once: one line naming the column, exit 3, nothing converted;
* a split with an anomaly kind listed in ``schema.fail_on`` fails the run before anything trains.
"""
from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TAXI = REPO.parent / "shared" / "datasets" / "taxi" / "data.csv"
ROWS = 2000

CONFIG = """
pipeline: {{name: taxi-tables, template: supervised}}
data: {{source: {source}, label_column: tips, split: {{train: 0.7, eval: 0.15, test: 0.15}}}}
model: {{family: mlp, task: regression, hparams: {{units: [32, 16], learning_rate: 0.005}}}}
training: {{epochs: 10, batch_size: 64, patience: 0, seed: 0}}
prune: {{enabled: false}}
qat: {{enabled: false}}
cluster: {{enabled: false}}
convert: {{variants: [float32, int8_ptq]}}
"""


def edgepipe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgepipe", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600)


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("edgepipe: error:")]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    if not TAXI.is_file():
        pytest.skip(f"taxi data not found at {TAXI} (the shared datasets folder is absent)")
    tmp = tmp_path_factory.mktemp("taxi")
    with TAXI.open(newline="") as f:
        rows = [line for _, line in zip(range(ROWS + 1), f)]
    (tmp / "taxi.csv").write_text("".join(rows))
    (tmp / "taxi.yaml").write_text(CONFIG.format(source=tmp / "taxi.csv"))
    return tmp


@pytest.fixture(scope="module")
def trained(sample):
    bundle = sample / "bundle"
    proc = edgepipe("run", str(sample / "taxi.yaml"), "--root", str(sample / "root"), "--output", str(bundle))
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = json.loads(edgepipe("show", "latest", "--root", str(sample / "root"), "--json").stdout)
    metrics = {e["node"]: json.loads(e["metrics"] or "{}") for e in shown["executions"]}
    return bundle, metrics


def test_the_taxi_table_as_it_is_trains_finite_and_ships_int8(trained):
    bundle, metrics = trained
    assert metrics["ingest_csv"]["missing_values"] > 0  # the data really has blanks
    assert math.isfinite(metrics["train_model"]["final_val_loss"])
    doc = json.loads((bundle / "bundle.json").read_text())
    assert doc["quantization"]["int8"] and doc["primary_variant"] == "int8_ptq" and doc["input"]["dtype"] == "int8"
    pre = doc["preprocessing"]
    assert {"payment_type", "company", "pickup_latitude"} <= set(pre["columns"])
    assert pre["transform"]["features"]["company"]["kind"] == "categorical"
    assert pre["transform"]["features"]["pickup_latitude"]["fill"] is not None  # imputed (train mean)
    assert "company#oov" in pre["features"] and len(pre["features"]) == doc["input"]["shape"][-1]
    assert pre["schema"]["features"]["company"]["type"] == "string"
    assert metrics["validate_examples"].get("new_category", 0) >= 1  # reported, not fatal by default


def _raw_rows(sample: Path, out: Path, n: int = 40) -> list[dict]:
    """The first ``n`` rows as they are, but: an unseen company, a blank fare and a blank pickup_latitude."""
    with (sample / "taxi.csv").open(newline="") as f:
        rows = [r for _, r in zip(range(n), csv.DictReader(f))]
    rows[0]["company"] = "Never Seen Cab Co"
    rows[1]["fare"] = ""
    rows[2]["pickup_latitude"] = ""
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def test_predict_takes_raw_csv_rows_and_reports_skew(trained, sample, tmp_path):
    bundle, _ = trained
    rows = _raw_rows(sample, tmp_path / "rows.csv")
    proc = edgepipe("predict", str(bundle), str(tmp_path / "rows.csv"))
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    predictions = [r for r in records if "y0" in r]
    assert len(predictions) == len(rows) and all(math.isfinite(r["y0"]) for r in predictions)
    (skew,) = [r["skew"] for r in records if "skew" in r]
    assert skew["rows"] == len(rows)
    assert "Never Seen Cab Co" in skew["columns"]["company"]["new_categories"]
    assert any(a["feature"] == "company" and a["kind"] == "new_category" for a in skew["anomalies"])
    assert skew["columns"]["fare"]["missing"] == 1 and skew["columns"]["pickup_latitude"]["missing"] == 1
    assert "edgepipe: skew of rows vs training" in proc.stderr

    from edgepipe.runtime import Bundle  # the same rows in-process: the CLI's numbers, not just its format

    loaded = Bundle.load(bundle)
    columns = {name: [r[name] for r in rows] for name in rows[0]}
    result = loaded.predict(columns, "rows")
    assert [r["y0"] for r in result.records()] == pytest.approx([r["y0"] for r in predictions])
    assert result.skew["counts"] == skew["counts"]


def test_serve_answers_raw_rows_with_a_skew_report(trained, sample, tmp_path):
    pytest.importorskip("fastapi", reason="the 'serve' extra (fastapi, uvicorn) is not installed")
    import http.client
    from urllib.parse import urlparse

    from edgepipe.runtime import Bundle
    from edgepipe.runtime.server import running

    bundle, _ = trained
    rows = _raw_rows(sample, tmp_path / "rows.csv", n=3)
    body = {"rows": [{k: (None if v == "" else v) for k, v in r.items() if k != "tips"} for r in rows]}
    with running(Bundle.load(bundle)) as url:
        parsed = urlparse(url)
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
        conn.request("POST", "/predict", json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        answer = json.loads(response.read())
    assert response.status == 200, answer
    assert len(answer["predictions"]) == 3 and answer["skew"]["rows"] == 3
    assert "Never Seen Cab Co" in answer["skew"]["columns"]["company"]["new_categories"]


def test_nan_without_imputation_stops_training_at_once(sample, tmp_path):
    proc = edgepipe("run", str(sample / "taxi.yaml"), "--root", str(sample / "root"), "--output",
                    str(tmp_path / "out"), "--set", "transform.impute=none")
    assert proc.returncode == 3, proc.stderr[-2000:]
    (line,) = error_lines(proc)
    assert "component 'train_model' failed: loss is nan at epoch 1, batch" in line
    assert "missing or non-finite values in the train split and no imputation (transform.impute is none)" in line
    assert "convert_tflite" not in proc.stdout + proc.stderr and not (tmp_path / "out").exists()


def test_schema_validation_fails_a_split_on_a_configured_anomaly_kind(sample, tmp_path):
    proc = edgepipe("run", str(sample / "taxi.yaml"), "--root", str(sample / "root"), "--output",
                    str(tmp_path / "out"), "--set", "schema.fail_on=[new_category]")
    assert proc.returncode == 3, proc.stderr[-2000:]
    (line,) = error_lines(proc)
    assert "component 'validate_examples' failed" in line and "['new_category'] in fail_on" in line
    assert "feature 'company'" in line or "feature 'payment_type'" in line
    assert "train_model" not in proc.stdout + proc.stderr
