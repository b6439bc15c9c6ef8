"""render_report: a self-contained report.html in the run's artifacts and in the bundle, that a browser renders.

Uses the real default-pipeline run shared with the runtime tests (tests/runtime/fixtures.py, run once per session).
"""
from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgepipe.components.report import render_report
from edgepipe.pipeline.artifacts import ExampleStatistics, Rejects, Report
from tests.runtime.fixtures import SMALL, PipelineRun, default_run, edgepipe, run_args

PNG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return default_run(tmp_path_factory)


@pytest.fixture(scope="module")
def report_html(run) -> str:
    return (run.artifact("render_report", "report") / "report.html").read_text(encoding="utf-8")


def test_the_run_writes_the_report_into_its_artifacts_and_the_bundle(run, report_html):
    assert (run.bundle / "report.html").read_text(encoding="utf-8") == report_html
    evaluation = json.loads((run.artifact("evaluate", "evaluation") / "evaluation.json").read_text())
    for heading in ("Data", "Training", "Anomaly evaluation", "Model comparison", "Rejected rows"):
        assert f">{heading}<" in report_html
    for model, threshold in evaluation["thresholds"].items():  # in the comparison table
        row = rf'<td class="l">{model}</td>(?:<td[^>]*>[^<]*</td>)*?<td>{threshold:.4g}</td>'  # same row
        assert re.search(row, report_html), model
    for variant in json.loads((run.artifact("convert_tflite", "tflite") / "variants.json").read_text()):
        assert f'<td class="l">{variant}</td>' in report_html  # every converted variant is compared


def test_the_report_is_self_contained_with_real_plots(run, report_html):
    assert not re.search(r'(src|href)="(https?:)?//', report_html), "external resource referenced"
    assert "<script" not in report_html and "<link" not in report_html and "<style>" in report_html
    alts = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,', report_html)
    images = [Image.open(io.BytesIO(base64.b64decode(data))) for data in PNG.findall(report_html)]
    expected = ["value distribution per channel and split", "training loss per epoch",
                "anomaly score timeline per series", "score histogram normal vs anomalous"]
    props = json.loads((run.artifact("render_report", "report") / "_artifact.json").read_text())["properties"]
    if "examples" in props["inputs"]:  # given the windows, the autoencoder's embedding and one layer's activations
        assert alts[4] == "bottleneck embedding (PCA)" and alts[5].startswith("activations of dec_")
        expected += alts[4:6]
    expected.append("energy per op")  # the shipped model's energy per op (sections/device.py)
    assert alts == expected
    for image in images:
        assert image.format == "PNG" and image.width > 300 and len(image.convert("L").getcolors(1 << 16)) > 10
    timeline = images[alts.index("anomaly score timeline per series")]
    assert timeline.height > 3 * 150  # one panel per series (3 machines)


def test_optional_inputs_missing_and_hostile_text_escaped(run, tmp_path):
    rejects = Rejects(tmp_path / "rejects")
    records = [{"file": "/data/x.csv", "line": 7, "reason": "not a number in column 'a': '<script>alert(1)'"},
               {"file": "/data/x.csv", "line": 9, "reason": "duplicate timestamp 2024-01-01T00:00 (first at line 3)"}]
    rejects.file("rejects.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    rejects.properties.update(count=2, rows_read=40)
    rejects.finalize()
    report = Report(tmp_path / "report")
    metrics = render_report.fn(statistics=ExampleStatistics.open(run.artifact("compute_statistics", "statistics")),
                               report=report, rejects=Rejects.open(rejects.path))
    page = (report.path / "report.html").read_text()
    assert metrics["plots"] == 1 == len(PNG.findall(page))  # only the data histograms without the other inputs
    assert page.count("Not available") == 3
    assert "<script>" not in page and "&lt;script&gt;alert(1)" in page
    assert '<td class="l">x.csv</td><td class="l">7</td>' in page
    assert re.search(r"<td class=\"l\">duplicate timestamp</td><td>1</td>", page)
    assert re.search(r"<b>0.05</b><span>rejected fraction</span>", page)


def test_a_refused_export_still_has_a_report_that_show_open_finds(run, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(run.root, root)
    refused = edgepipe(*run_args(root, tmp_path / "out", SMALL + ["export.min_agreement=1.0",
                                                                   "evaluate.threshold_quantile=0.5",
                                                                   "evaluate.agreement_band=0"]))
    assert refused.returncode == 4, refused.stdout + refused.stderr
    assert "render_report" in refused.stdout and not (tmp_path / "out").exists()
    shown = edgepipe("show", "latest", "--root", str(root), "--open")
    assert shown.returncode == 0, shown.stderr
    path = Path(shown.stdout.strip())
    assert path.name == "report.html" and path.is_relative_to(root) and path.is_file()
    # It is this run's report: it shows the thresholds of this run's (quantile 0.5) evaluation.
    evaluation = PipelineRun(root, tmp_path / "out", "").artifact("evaluate", "evaluation")
    assert evaluation.is_relative_to(root)
    thresholds = json.loads((evaluation / "evaluation.json").read_text())["thresholds"]
    page = path.read_text()
    assert all(f"{value:.4g}" in page for value in thresholds.values())


def test_chromium_renders_the_report(run, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not installed (make test installs it when run as root with apt-get)")
    shot = tmp_path / "report.png"
    report = run.artifact("render_report", "report") / "report.html"
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2000",
         report.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.exists(), result.stderr[-2000:]
    assert shot.stat().st_size > 50_000
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2000)
    colors = image.getcolors(1 << 20)
    assert colors is not None and len(colors) > 50, "screenshot is (nearly) one colour"
    header = image.crop((0, 0, 1280, 60)).convert("L")
    assert np.asarray(header).mean() < 80  # the dark header bar rendered (CSS applied)
