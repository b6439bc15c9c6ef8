"""What the run page prints, read as a user reads it: a node's artifact files linked with sizes and its metrics
rounded (QA23 U9), one-epoch curves visible on a non-negative axis (U1), sizes with units (U4)."""
from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from edgepipe.ui import svg
from edgepipe.ui.app import create_app

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def client(ui_fixture):
    with TestClient(create_app(ui_fixture.root, config_dirs=[ui_fixture.configs], start_worker=False)) as c:
        yield c


def panel(page: str, node: str) -> str:
    return re.search(rf'<details class="node-detail" id="detail-{node}".*?</details>', page, re.S).group(0)


def test_node_panels_link_every_file_of_the_artifact_with_its_size(client, ui_fixture):
    from edgepipe.ui.app import size

    page = client.get(f"/runs/{ui_fixture.first}").text
    export = panel(page, "export_bundle")
    found = re.findall(r'<a class="artifact-file" href="(/artifacts/\w+/[^"]+)">([^<]+)</a> <small>([^<]+)<', export)
    links = {href: (name, shown) for href, name, shown in found}
    names = {n for n, _ in links.values()}
    assert {"model.tflite", "bundle.json", "_artifact.json"} <= names
    assert any(n.endswith(".cc") for n in names)  # the TFLite Micro C array is downloadable too
    href = next(h for h, (n, _) in links.items() if n == "model.tflite")
    served = client.get(html.unescape(href))
    assert served.status_code == 200
    shown = links[href][1]
    assert shown == size(len(served.content)) and shown.endswith("B")
    train = panel(page, "train_autoencoder")
    assert "artifact-file" in train and "_artifact.json" in train


def test_metrics_are_rounded_and_null_is_n_a():
    from edgepipe.ui.app import number, size

    assert number(0.05556979030370712) == "0.05557"
    assert number(None) == "n/a"
    assert number(12100) == "12100" and number(38720.0) == "38720"  # counts stay exact, never 1.21e+04
    assert number(True) == "true" and number([1, 2]) == "[1, 2]"
    assert size(512) == "512 B" and size(49384) == "48.2 KiB" and size(None) == "-"


def test_run_page_prints_metrics_rounded(client, ui_fixture):
    page = client.get(f"/runs/{ui_fixture.first}").text
    tables = "".join(re.findall(r"<h4>Metrics</h4>\s*<table.*?</table>", page, re.S))
    metrics = re.findall(r"<tr><td>[\w.]+</td><td><code>([^<]*)</code></td></tr>", tables)
    assert metrics
    floats = [m for m in metrics if re.fullmatch(r"-?\d+\.\d+(e[-+]\d+)?", m)]
    assert floats and all(len(re.sub(r"[^0-9]", "", m.split("e")[0]).lstrip("0")) <= 4 for m in floats)
    assert "null" not in metrics


def test_a_one_point_series_is_drawn_as_a_marker_on_a_non_negative_axis():
    chart = svg.line_chart({"loss": [0.0556], "val_loss": [0.07]})
    assert chart.count('<circle class="point"') == 2
    ticks = [float(t) for t in re.findall(r'class="tick">(-?[\d.e+-]+)</text>', chart)]
    assert ticks and min(ticks) >= 0
    flat = svg.line_chart({"loss": [0.05, 0.05, 0.05]})
    assert min(float(t) for t in re.findall(r'class="tick">(-?[\d.e+-]+)</text>', flat)) >= 0
    assert "<circle" not in flat  # a line of three points is visible as it is
    below = svg.line_chart({"score": [-1.0, -1.0]})  # values below zero keep their axis
    assert min(float(t) for t in re.findall(r'class="tick">(-?[\d.e+-]+)</text>', below)) < -1


def test_bundles_list_says_what_each_bundle_is_and_when(client, ui_fixture):
    page = client.get("/bundles").text
    rows = re.findall(r"<tr><td><a class=\"bundle-link\".*?</tr>", page, re.S)
    assert len(rows) >= 2  # the fixture's two runs; earlier tests of the session (the browser's launch) add theirs
    for run in (ui_fixture.first, ui_fixture.second):
        assert any(f'href="/runs/{run}"' in row for row in rows), run
    for row in rows:
        assert re.search(r'<td class="created">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d</td>', row)
        assert "<td>tiny</td>" in row and "anomaly_detection" in row and "f1 " in row


def test_a_root_override_is_refused_not_ignored(client):
    before = len(client.get("/api/jobs").json()["jobs"])
    done = client.post("/api/jobs", json={"config": "tiny", "overrides": ["pipeline.root=/tmp/elsewhere"]})
    assert done.status_code == 400 and "pipeline.root is set by the UI's --root" in done.json()["error"]
    assert len(client.get("/api/jobs").json()["jobs"]) == before


def test_sizes_have_units_internal_fields_are_hidden_and_a_complete_run_has_no_error(client, ui_fixture):
    page = client.get(f"/runs/{ui_fixture.first}").text
    variants = re.search(r'<table class="variants" id="variants">.*?</table>', page, re.S).group(0)
    assert re.search(r"<td>\d+(\.\d)? (B|KiB|MiB)</td><td>\d+(\.\d)? (B|KiB|MiB)</td>", variants)
    data = client.get(f"/runs/{ui_fixture.first}/data").text
    assert "quantiles_exact" not in data
    splits = re.findall(r'<h3>split (\w+)</h3>', data)
    assert splits and splits[0] == "train"
    for run in client.get("/api/runs").json()["runs"]:
        assert run["error"] is None
    assert client.get(f"/api/runs/{ui_fixture.first}").json()["error"] is None


def test_compare_counts_are_integers_legend_beside_the_plot_and_one_run_twice_is_refused(client, ui_fixture):
    page = client.get("/compare", params={"run": [ui_fixture.first, ui_fixture.second]}).text
    metrics = re.search(r'<table class="compare" id="metrics">.*?</table>', page, re.S).group(0)
    assert "e+0" not in metrics
    rows = dict(re.findall(r"<tr><td>([\w.]+)</td><td>([^<]*)</td>", metrics))
    assert re.fullmatch(r"\d+", rows["train_autoencoder.parameters"])
    chart = re.search(r'<div id="overlay">(.*?)</div>', page, re.S).group(1)
    plot_right = int(re.search(r'<rect x="(\d+)" y="\d+" width="(\d+)"', chart).group(1)) + \
        int(re.search(r'<rect x="(\d+)" y="\d+" width="(\d+)"', chart).group(2))
    assert all(float(x) > plot_right for x in re.findall(r'<text x="([\d.]+)"[^>]*class="legend"', chart))
    same = client.get("/compare", params={"run": [ui_fixture.first, ui_fixture.first]})
    assert same.status_code == 400 and "given twice" in same.text
    assert client.get("/api/compare", params={"run": [ui_fixture.first, ui_fixture.first[:-2]]}).status_code == 400


def test_a_too_short_upload_is_named_like_every_other_upload_error(client, ui_fixture):
    bundle = client.get(f"/api/runs/{ui_fixture.first}").json()["bundle"]
    lines = (REPO / "data" / "default" / "sensors.csv").read_text().splitlines()
    page = client.post(f"/bundles/{bundle}/predict", files={"file": ("short.csv", "\n".join(lines[:11]).encode(),
                                                                     "text/csv")}, data={"series_column": "machine"})
    assert page.status_code == 422
    error = html.unescape(re.search(r'<p class="error" id="predict-error">(.*?)</p>', page.text, re.S).group(1))
    assert error.strip().startswith("short.csv: ") and "fewer than one window" in error


def test_artifact_listing_keeps_to_the_artifact_directory(tmp_path):
    from edgepipe.ui.runs import artifact_files

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("x")
    artifact = tmp_path / "artifact"
    (artifact / "keras").mkdir(parents=True)
    (artifact / "model.tflite").write_bytes(b"\0" * 10)
    (artifact / "keras" / "weights.h5").write_bytes(b"\0" * 3)
    (artifact / "link.txt").symlink_to(outside / "secret.txt")
    (artifact / "linked-dir").symlink_to(outside, target_is_directory=True)
    assert artifact_files(str(artifact)) == [{"path": "keras/weights.h5", "size": 3},
                                             {"path": "model.tflite", "size": 10}]
    assert artifact_files(str(tmp_path / "missing")) == []
