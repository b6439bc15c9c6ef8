"""The UI's pages and JSON endpoints on a real root (two tiny runs), through FastAPI's TestClient."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from edgepipe.pipeline.metadata import MetadataStore
from edgepipe.ui import forms
from edgepipe.ui.app import create_app

REPO = Path(__file__).resolve().parents[2]
DATA_NODES = ["ingest_timeseries", "compute_statistics", "normalize", "make_windows"]


@pytest.fixture(scope="module")
def client(ui_fixture):
    app = create_app(ui_fixture.root, config_dirs=[ui_fixture.configs], start_worker=False,
                     max_upload=256 * 1024)
    with TestClient(app) as c:
        yield c


def no_traceback(text: str) -> bool:
    return "Traceback" not in text and 'File "' not in text


def test_runs_list_summarises_each_run(client, ui_fixture):
    runs = {r["id"]: r for r in client.get("/api/runs").json()["runs"]}
    first, second = runs[ui_fixture.first], runs[ui_fixture.second]
    for run in (first, second):
        assert (run["pipeline"], run["template"], run["family"], run["status"]) == \
               ("tiny", "anomaly_detection", "autoencoder", "complete")
        assert run["nodes"] == 9 and run["duration"] > 0 and run["bundle"] and run["report"]
        assert run["metric"]["name"] == "f1" and 0 <= run["metric"]["value"] <= 1
        assert run["metric"]["variant"] == "int8_ptq"
    assert first["cached"] == 0
    assert second["cached"] == 4  # ingest, statistics, normalize, windows: same data, same keys


def test_runs_list_sorts_and_filters(client, ui_fixture):
    ids = lambda **q: [r["id"] for r in client.get("/api/runs", params=q).json()["runs"]]  # noqa: E731
    newest_first = ids(sort="started", desc=1)
    assert newest_first.index(ui_fixture.second) < newest_first.index(ui_fixture.first)
    oldest_first = ids(sort="started", desc=0)
    assert oldest_first.index(ui_fixture.first) < oldest_first.index(ui_fixture.second)
    by_cache = ids(sort="cached", desc=1)
    assert by_cache.index(ui_fixture.second) < by_cache.index(ui_fixture.first)
    assert ids(q=ui_fixture.first[-6:]) == [ui_fixture.first]
    assert ids(q="no-such-pipeline") == []
    assert ids(status="failed") == []
    assert {ui_fixture.first, ui_fixture.second} <= set(ids(status="complete"))
    page = client.get("/", params={"sort": "duration", "desc": 0, "q": "tiny"})
    assert page.status_code == 200
    assert page.text.count('class="run status-complete"') >= 2 and "duration ▲" in page.text


def test_run_page_draws_the_dag_with_states_cache_marks_and_times(client, ui_fixture):
    page = client.get(f"/runs/{ui_fixture.second}").text
    NODES = ui_fixture.nodes
    assert NODES[:4] == DATA_NODES and "train_autoencoder" in NODES and len(NODES) == 9
    nodes = dict(re.findall(r'<g class="node state-(\w+)" id="node-(\w+)"', page)[i][::-1] for i in range(9))
    assert list(nodes) == NODES
    assert [nodes[n] for n in NODES[:4]] == ["cached"] * 4
    assert [nodes[n] for n in NODES[4:]] == ["complete"] * 5
    assert page.count("&#x21bb; cached") == 4
    assert re.search(r'id="node-train_autoencoder".*?complete \d+\.\ds</text>', page)
    detail = client.get(f"/api/runs/{ui_fixture.second}").json()
    edges = {tuple(e) for e in detail["edges"]}
    assert ("make_windows", "train_autoencoder") in edges and ("train_autoencoder", "convert_tflite") in edges
    assert page.count('class="edge"') == len(edges)
    # lineage: a cache hit names the run that produced its outputs; inputs name their producing node and run
    ingest = next(n for n in detail["node_list"] if n["name"] == "ingest_timeseries")
    assert ingest["cached_from_run"] == ui_fixture.first
    train = next(n for n in detail["node_list"] if n["name"] == "train_autoencoder")
    assert [(i["name"], i["producer_node"], i["producer_run"]) for i in train["inputs"]][0] == \
           ("windows", "make_windows", ui_fixture.first)
    assert train["params"]["epochs"] == 3 and train["metrics"]["epochs_run"] == 3
    assert detail["curves"]["train_autoencoder"]["loss"].__len__() == 3
    assert [v["variant"] for v in detail["variants"]] == ["keras", "float32", "int8_ptq"]
    assert 'id="variants"' in page and "int8_ptq ★" in page


def test_report_and_artifact_files_are_served_only_inside_registered_artifacts(client, ui_fixture):
    detail = client.get(f"/api/runs/{ui_fixture.first}").json()
    report = client.get(f"/artifacts/{detail['report']}/report.html")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "<html" in report.text.lower()
    assert f'/artifacts/{detail["report"]}/report.html' in client.get(f"/runs/{ui_fixture.first}").text
    bundle_json = client.get(f"/artifacts/{detail['bundle']}/bundle.json")
    assert bundle_json.status_code == 200 and json.loads(bundle_json.text)["task"] == "anomaly_detection"
    for bad in (f"/artifacts/{detail['bundle']}/../../../../metadata.sqlite",
                f"/artifacts/{detail['bundle']}/..%2F..%2F..%2F..%2Fmetadata.sqlite",
                f"/artifacts/{detail['bundle']}/%2e%2e/%2e%2e/%2e%2e/%2e%2e/metadata.sqlite",
                f"/artifacts/{detail['bundle']}//etc/passwd",
                "/artifacts/0123456789abcdef/bundle.json"):
        response = client.get(bad)
        assert response.status_code == 404, bad
        assert "SQLite" not in response.text and "root:" not in response.text
    assert (ui_fixture.root / "metadata.sqlite").exists()


def test_event_stream_of_a_finished_run_replays_progress_then_ends(client, ui_fixture):
    with client.stream("GET", f"/runs/{ui_fixture.first}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    events = re.findall(r"event: (\w+)\ndata: (.*)\n\n", text)
    kinds = [k for k, _ in events]
    epochs = [json.loads(d) for k, d in events if k == "progress" and json.loads(d)["kind"] == "epoch"]
    assert [e["step"] for e in epochs] == [1, 2] and all("loss" in e["values"] for e in epochs)
    assert epochs[0]["node"] == "train_autoencoder"
    nodes = json.loads(next(d for k, d in events if k == "node"))
    assert [n["name"] for n in nodes] == ui_fixture.nodes and {n["state"] for n in nodes} == {"complete"}
    assert kinds[-2:] == ["run", "end"] and json.loads(events[-1][1])["status"] == "complete"


def test_data_page_shows_statistics_and_rejects(client, ui_fixture):
    page = client.get(f"/runs/{ui_fixture.first}/data").text
    for split in ("train", "eval", "test"):
        assert f'id="stats-{split}"' in page
    assert page.count('class="hist"') == 9  # 3 channels x 3 splits, each with a histogram
    assert "vibration" in page and "temperature" in page
    assert re.search(r'id="rejects-count">0 of 12096 input rows rejected by ingest_timeseries', page)


def test_compare_shows_config_diff_metrics_variants_and_curves(client, ui_fixture):
    data = client.get("/api/compare", params=[("run", ui_fixture.first), ("run", ui_fixture.second)]).json()
    assert data["runs"] == [ui_fixture.first, ui_fixture.second]
    assert {"key": "training.epochs", "values": [2, 3]} in data["diff"]
    assert all(d["key"] != "window.size" for d in data["diff"])  # equal keys are not differences
    epochs_run = next(m for m in data["metrics"] if m["key"] == "train_autoencoder.epochs_run")
    assert epochs_run["values"] == [2, 3]
    lengths = sorted(len(v) for k, v in data["curves"].items() if k.endswith("train_autoencoder loss"))
    assert lengths == [2, 3]
    page = client.get("/compare", params=[("run", ui_fixture.first), ("run", ui_fixture.second)]).text
    assert 'id="config-diff"' in page and "training.epochs" in page
    assert page.count('class="series"') == 4  # loss and val_loss of both runs overlaid
    one = client.get("/compare", params={"run": ui_fixture.first})
    assert one.status_code == 400 and "two or more runs" in one.text


def test_new_run_form_is_generated_from_the_typed_config(client, ui_fixture):
    page = client.get("/new", params={"config": "tiny"}).text
    assert re.search(r'<input type="text" class="number" inputmode="numeric" name="training.epochs" '
                     r'id="f-training.epochs" value="2">', page)
    assert re.search(r'<select name="model.family"[^>]*>.*?<option value="autoencoder" selected>', page, re.S)
    assert 'name="prune.enabled" id="f-prune.enabled" value="true" >' in page  # a checkbox, unticked
    assert 'inputmode="decimal" name="training.learning_rate"' in page
    assert 'name="pipeline.root"' not in page  # where runs go is the UI's --root
    assert 'name="model.hparams.' in page  # the family's hyperparameters, one field each
    cnn = client.get("/new", params={"config": "tiny", "family": "cnn"}).text
    assert 'name="model.hparams.dense_units"' in cnn
    assert client.get("/new", params={"config": "default"}).status_code == 400  # not in the allowed dirs


def test_form_overrides_are_only_the_changed_values(ui_fixture):
    config = forms.check(ui_fixture.configs / "tiny.yaml", [])
    fields = {f["key"]: f for s in forms.form_sections(config) for f in s["fields"]}
    form = {key: [str(f["value"]).lower() if f["kind"] == "checkbox" else str(f["value"])]
            for key, f in fields.items()}
    assert forms.overrides_from_form(config, form) == []
    form["training.epochs"] = ["5"]
    form["prune.enabled"] = ["false", "true"]  # hidden "false" + the ticked checkbox
    form["convert.variants"] = ["[float32]"]
    assert forms.overrides_from_form(config, form) == ["training.epochs=5", "prune.enabled=true",
                                                       "convert.variants=[float32]"]


def test_launch_requests_are_validated_before_they_queue(client, ui_fixture):
    bad = client.post("/new", data={"__config": "tiny", "training.epochs": "0"})
    assert bad.status_code == 400 and "training.epochs" in bad.text and no_traceback(bad.text)
    assert 'id="form-error"' in bad.text
    outside = client.post("/api/jobs", json={"config": "../../etc/passwd"})
    assert outside.status_code == 400 and "not one the UI may launch" in outside.json()["error"]
    typo = client.post("/api/jobs", json={"config": "tiny", "overrides": ["training.epochz=3"]})
    assert typo.status_code == 400 and "unknown config key 'training.epochz'" in typo.json()["error"]
    queued = client.post("/api/jobs", json={"config": "tiny", "overrides": ["training.epochs=1"]}).json()["job"]
    assert queued["status"] == "queued" and queued["overrides"] == ["training.epochs=1"]
    assert client.post(f"/jobs/{queued['id']}/cancel", headers={"accept": "application/json"}).json()["result"] \
           == "cancelled"
    assert client.get("/api/jobs").json()["jobs"][0]["status"] == "cancelled"
    form = client.post("/new", data={"__config": "tiny", "training.epochs": "2"}, follow_redirects=False)
    assert form.status_code == 303 and form.headers["location"] == "/jobs"
    job = client.get("/api/jobs").json()["jobs"][0]
    assert job["status"] == "queued" and job["overrides"] == []  # nothing changed: the file as it is
    client.post(f"/jobs/{job['id']}/cancel")


def test_try_a_bundle_draws_anomaly_scores(client, ui_fixture):
    bundle = client.get(f"/api/runs/{ui_fixture.first}").json()["bundle"]
    lines = (REPO / "data" / "default" / "sensors.csv").read_text().splitlines()
    csv = "\n".join(lines[:1001]).encode()  # header + 1000 rows: fits the test's 256 KiB upload limit
    page = client.post(f"/bundles/{bundle}/predict", files={"file": ("part.csv", csv, "text/csv")},
                       data={"series_column": "machine"})
    assert page.status_code == 200, page.text[-500:]
    parts = re.findall(r'<div class="part"><h3>(\w+)</h3><p class="summary">(\d+) windows, (\d+) anomalous', page.text)
    assert parts and all(int(w) > 0 for _, w, _ in parts)
    assert page.text.count('class="chart scores"') == len(parts)
    assert 'class="hline"' in page.text and 'class="series"' in page.text
    assert 'class="skew"' not in page.text  # its own data: nothing unlike training


def test_try_a_bundle_warns_when_the_upload_is_unlike_training(client, ui_fixture):
    """QA23 U5: an upload far outside the bundle's training range showed "every window anomalous" and nothing else;
    the runtime's skew report is shown beside the plot, naming the channel."""
    bundle = client.get(f"/api/runs/{ui_fixture.first}").json()["bundle"]
    rows = (REPO / "data" / "default" / "sensors.csv").read_text().splitlines()
    header = rows[0].split(",")
    column = header.index("temperature")

    def fahrenheit(line: str) -> str:
        cells = line.split(",")
        cells[column] = f"{float(cells[column]) * 1.8 + 32:.4f}"
        return ",".join(cells)

    csv = "\n".join([rows[0], *map(fahrenheit, rows[1:1001])]).encode()
    page = client.post(f"/bundles/{bundle}/predict", files={"file": ("part.csv", csv, "text/csv")},
                       data={"series_column": "machine"})
    assert page.status_code == 200, page.text[-500:]
    warnings = re.findall(r'<li class="warning">input unlike training: (\w+): ([^<]+)</li>', page.text)
    assert warnings and {feature for feature, _ in warnings} == {"temperature"}, warnings
    assert any("outside the training range" in detail for _, detail in warnings)


def test_uploads_are_bounded_and_bad_input_is_one_line(client, ui_fixture):
    bundle = client.get(f"/api/runs/{ui_fixture.first}").json()["bundle"]
    big = client.post(f"/bundles/{bundle}/predict", files={"file": ("big.csv", b"x" * (400 * 1024), "text/csv")})
    assert big.status_code == 413 and no_traceback(big.text)
    wrong = client.post(f"/bundles/{bundle}/predict", files={"file": ("model.exe", b"MZ", "application/x")})
    assert wrong.status_code == 400 and "unknown input type" in wrong.text
    broken = client.post(f"/bundles/{bundle}/predict",
                         files={"file": ("s.csv", b"timestamp,vibration\n1,2\n", "text/csv")})
    assert broken.status_code == 422 and no_traceback(broken.text)
    error = re.search(r'<p class="error" id="predict-error">(.*?)</p>', broken.text, re.S).group(1)
    assert "\n" not in error.strip() and "temperature" in error
    assert client.get("/bundles/nope").status_code == 404


def test_unknown_pages_are_one_line_errors(client):
    for url, code in (("/runs/nope", 404), ("/api/runs/nope", 404), ("/jobs/nope/log", 404)):
        response = client.get(url)
        assert response.status_code == code and no_traceback(response.text)
    assert client.get("/api/runs/nope").json() == {"error": "no run 'nope' in " + str(client.app.state.ui.root)}


def test_token_is_required_when_set_and_posts_must_be_same_origin(ui_fixture):
    app = create_app(ui_fixture.root, config_dirs=[ui_fixture.configs], token="s3cret", start_worker=False)
    with TestClient(app) as c:
        assert c.get("/").status_code == 401
        assert c.get("/api/runs").status_code == 401
        assert c.get("/static/style.css").status_code == 401
        assert c.get("/", headers={"authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/api/runs", headers={"authorization": "Bearer s3cret"}).status_code == 200
        first = c.get("/?token=s3cret&q=tiny", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/?q=tiny"  # token leaves the URL ...
        assert c.get("/").status_code == 200  # ... and lives in the cookie
        foreign = c.post("/api/jobs", json={"config": "tiny"}, headers={"origin": "http://evil.example"})
        assert foreign.status_code == 403
    assert MetadataStore(ui_fixture.root / "metadata.sqlite").run(ui_fixture.first)["status"] == "complete"


def test_chunked_upload_is_cut_off_at_the_limit(client, ui_fixture):
    bundle = client.get(f"/api/runs/{ui_fixture.first}").json()["bundle"]
    boundary = "xyz"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n"
            "Content-Type: text/csv\r\n\r\n").encode()

    def body():  # no Content-Length: the size is only known while it streams
        yield head
        for _ in range(64):
            yield b"1,2,3\n" * 2000
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(f"/bundles/{bundle}/predict", content=body(),
                           headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 413 and "upload too large" in response.text and no_traceback(response.text)
