"""One report for every task: each task's sections render from its real evaluation artifacts, numbers match the
evaluation, pictures are real PNGs, and the section registry takes a task's sections from anywhere (a test here).

Artifacts come from the real components on tiny synthetic data (``family_runs.py``, built once per session).
"""
from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from edgepipe.components.report import render_report
from edgepipe.components.report.sections import section, sections_for
from edgepipe.pipeline.artifacts import Report
from edgepipe.pipeline.errors import ConfigError
from edgepipe.pipeline.executor import invoke
from tests.components.report import family_runs

PNG = re.compile(r'<img alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="session")
def base(tmp_path_factory) -> str:
    return str(tmp_path_factory.getbasetemp() / "report-families")


def render(tmp_path, name="report", **inputs_and_params):
    inputs = {k: v for k, v in inputs_and_params.items()
              if k in ("statistics", "rejects", "model", "evaluation", "tflite", "examples")}
    params = {k: v for k, v in inputs_and_params.items() if k not in inputs}
    out, metrics = invoke(render_report, inputs, {"report": tmp_path / name}, params)
    report = out["report"]
    page = (report.path / Report.filename).read_text(encoding="utf-8")
    assert metrics["plots"] == page.count("data:image/png;base64,")
    return page, report.properties


def section_html(page: str, anchor: str) -> str:
    match = re.search(rf'<section id="{re.escape(anchor)}">(.*?)</section>', page, re.S)
    assert match, f"no section '{anchor}'"
    return match.group(1)


def images(html_text: str) -> dict[str, Image.Image]:
    out = {}
    for alt, data in PNG.findall(html_text):
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        assert image.format == "PNG" and len(image.convert("L").getcolors(1 << 16)) > 5, alt
        out[alt] = image
    return out


def cells(row_html: str) -> list[str]:
    return re.findall(r"<td[^>]*>([^<]*)</td>", row_html)


def table_rows(html_text: str) -> list[list[str]]:
    return [c for c in (cells(r) for r in re.findall(r"<tr[^>]*>(.*?)</tr>", html_text)) if c]


def fmt(v) -> str:
    from edgepipe.components.report.html import fmt as f

    return f(v)


# ---- classification -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def classification(base, tmp_path_factory):
    run = family_runs.classification(base)
    page, props = render(tmp_path_factory.mktemp("cls"), **run, inspect_layer="block0_conv0")
    return run, page, props


def test_classification_confusion_matrix_and_per_class_numbers_match_the_evaluation(classification):
    run, page, props = classification
    metrics = run["evaluation"].read_json("evaluation.json")["metrics"]
    assert props["task"] == "classification"
    assert props["sections"] == ["data", "training", "evaluation", "lowest_confidence", "network", "models",
                                 "device_energy"]
    assert set(images(section_html(page, "device_energy"))) == {"energy per op"}  # int8_ptq's energy per op
    evaluation = section_html(page, "evaluation")
    assert set(images(evaluation)) == {"confusion matrix"}
    rows = table_rows(evaluation)
    counts = [r for r in rows if r and r[0] in family_runs.CLASSES and len(r) == 1 + len(family_runs.CLASSES)]
    assert [[int(c) for c in r[1:]] for r in counts] == metrics["confusion_matrix"]
    per_class = {r[0]: r[1:] for r in rows if len(r) == 5}
    for name, m in metrics["per_class"].items():
        assert per_class[name] == [fmt(m["precision"]), fmt(m["recall"]), fmt(m["f1"]), fmt(m["support"])]
    assert f"<b>{fmt(metrics['accuracy'])}</b><span>accuracy</span>" in evaluation


def test_classification_variant_table_matches_the_evaluations_rows(classification):
    run, page, _ = classification
    rows = {r["variant"]: r for r in run["evaluation"].read_json("variants.json")}
    assert set(rows) == {"keras", "float32", "int8_ptq"}
    shown = {r[0]: r for r in table_rows(section_html(page, "models"))}
    for name, row in rows.items():
        assert shown[name][-4:-1] == [fmt(row["metric"]), fmt(row["metric_drop"]), fmt(row["agreement"])]
        gate = "reference" if name == "keras" else "passes" if row["agreement"] >= 0.98 else "agreement"
        assert shown[name][-1].startswith(gate)
    agreement = run["evaluation"].read_json("evaluation.json")["agreement"]["int8_ptq"]["all"]
    assert f"<b>{fmt(agreement)}</b><span>int8_ptq agreement</span>" in section_html(page, "evaluation")


def test_classification_lowest_confidence_examples_are_drawn_with_their_labels(classification):
    run, page, _ = classification
    lowest = run["evaluation"].read_json("evaluation.json")["metrics"]["lowest_confidence"]
    part = section_html(page, "lowest-confidence")
    grid = images(part)["lowest-confidence examples"]
    assert grid.width > 300 and grid.height > 100
    rows = [r for r in table_rows(part) if len(r) == 5]
    assert [(int(r[0]), r[1], r[2]) for r in rows] == [(i["index"], i["true"], i["predicted"]) for i in lowest]


def test_network_section_draws_the_named_layers_activations(classification):
    _, page, _ = classification
    part = section_html(page, "network")
    assert set(images(part)) == {"activations of block0_conv0"}
    assert "<b>block0_conv0</b><span>inspected layer</span>" in part


def test_default_inspected_layer_is_the_last_convolution(classification, tmp_path):
    run, _, _ = classification
    page, _ = render(tmp_path, model=run["model"], evaluation=run["evaluation"])
    convs = [layer.name for layer in run["model"].load_keras().layers if "Conv" in type(layer).__name__]
    assert f"activations of {convs[-1]}" in images(section_html(page, "network"))


def test_a_bad_inspect_layer_is_a_one_line_config_error_naming_the_layers(classification, tmp_path):
    run, _, _ = classification
    with pytest.raises(ConfigError, match="inspect_layer.*no layer 'nope'.*allowed: .*block0_conv0") as info:
        render(tmp_path, model=run["model"], evaluation=run["evaluation"], inspect_layer="nope")
    assert "\n" not in str(info.value)


def test_examples_alone_supply_the_pictures(classification, tmp_path):
    """Without predictions.npz the inputs come from the examples' evaluated split, as evaluation reads them."""
    run, _, _ = classification
    page, props = render(tmp_path, model=run["model"], examples=run["examples"], task="classification")
    assert props["task"] == "classification" and "Not available (no classification evaluation)" in page
    assert set(images(section_html(page, "network"))) == {"activations of block0_conv0"}
    data = section_html(page, "data")
    assert "<b>60</b><span>train examples</span>" in data and "middle" in data


# ---- segmentation, regression, forecasting, reconstruction -----------------------------------------------------------
def test_segmentation_iou_per_class_and_mask_overlays(base, tmp_path):
    run = family_runs.segmentation(base)
    page, props = render(tmp_path, **run)
    metrics = run["evaluation"].read_json("evaluation.json")["metrics"]
    evaluation = section_html(page, "evaluation")
    iou = {r[0]: r[1] for r in table_rows(evaluation) if len(r) == 2}
    assert iou == {name: fmt(v) for name, v in metrics["iou"].items()}
    assert set(images(evaluation)) == {"pixel confusion matrix"}
    masks = images(section_html(page, "masks"))["true and predicted masks"]
    assert masks.height > 2 * masks.width  # six rows of input | true | predicted
    assert props["sections"] == ["data", "training", "evaluation", "masks", "network", "models"]


def test_regression_scatter_and_residuals(base, tmp_path):
    run = family_runs.regression(base)
    page, _ = render(tmp_path, **run)
    metrics = run["evaluation"].read_json("evaluation.json")["metrics"]
    evaluation = section_html(page, "evaluation")
    assert f"<b>{fmt(metrics['mae'])}</b><span>MAE</span>" in evaluation
    assert set(images(evaluation)) == {"predicted vs true"}
    assert "activations of" in "".join(images(section_html(page, "network")))


def test_forecasting_draws_windows_continued_by_true_and_predicted_values(base, tmp_path):
    run = family_runs.forecasting(base)
    page, props = render(tmp_path, **run)
    assert props["task"] == "forecasting"
    assert set(images(section_html(page, "evaluation"))) == {"predicted vs true"}
    assert set(images(section_html(page, "forecasts"))) == {"forecasts"}


def test_reconstruction_embedding_and_reconstructions(base, tmp_path):
    run = family_runs.reconstruction(base)
    page, props = render(tmp_path, **run)
    assert props["task"] == "reconstruction"
    assert set(images(section_html(page, "evaluation"))) == {"inputs vs reconstructions"}
    embedding = section_html(page, "embedding")
    assert set(images(embedding)) == {"bottleneck embedding (PCA)"}
    assert "<b>embedding</b> (4 values per example) of 30 inputs" in embedding
    assert "colour: log10 reconstruction MSE" in embedding


def test_pca_projection_keeps_the_dominant_directions():
    from edgepipe.components.report.sections.reconstruction import pca_2d

    rng = np.random.default_rng(0)
    z = np.c_[rng.normal(0, 10, 500), rng.normal(0, 3, 500), rng.normal(0, 0.1, 500)]
    points, explained = pca_2d(z @ np.linalg.qr(rng.normal(size=(3, 3)))[0])
    assert points.shape == (500, 2) and explained[0] > 0.85 and 0.05 < explained[1] < 0.15
    assert abs(np.std(points[:, 0]) - 10) < 1 and abs(np.std(points[:, 1]) - 3) < 0.4


# ---- generation, control ---------------------------------------------------------------------------------------------
def test_generation_shows_the_sample_grid_and_the_judges_class_shares(base, tmp_path):
    run = family_runs.generation(base)
    page, props = render(tmp_path, **run)
    metrics = run["evaluation"].read_json("evaluation.json")["metrics"]
    assert props["task"] == "generation"
    assert set(images(section_html(page, "evaluation"))) == {"generated samples_by_class.png"}
    judge = section_html(page, "judge")
    assert set(images(judge)) == {"class shares"}
    shares = {r[0]: r[1] for r in table_rows(judge) if len(r) == 2}
    assert shares == {k: fmt(v) for k, v in metrics["class_shares"].items()}
    assert "sampled latents" in section_html(page, "network")


def test_control_return_curve_from_the_training_history(base, tmp_path):
    pytest.importorskip("tf_agents", reason="the rl extra is not installed (make rl)")
    run = family_runs.control(base)
    page, props = render(tmp_path, **run)
    history = run["model"].read_json("history.json")
    training = section_html(page, "training")
    assert set(images(training)) == {"return per training iteration"}
    assert f"<b>{fmt(history['best']['average_return'])}</b><span>best average return</span>" in training
    metrics = run["evaluation"].read_json("evaluation.json")["metrics"]
    assert f"<b>{fmt(metrics['average_return'])}</b><span>average return</span>" in section_html(page, "evaluation")
    assert "not stored" in section_html(page, "network")


def test_control_draws_per_episode_returns_once_the_evaluation_records_them(base, tmp_path):
    """evaluate_policy records only the summary today; given ``metrics.returns`` the report draws each episode."""
    import shutil

    from edgepipe.pipeline.artifacts import ModelEvaluation

    pytest.importorskip("tf_agents", reason="the rl extra is not installed (make rl)")
    run = family_runs.control(base)
    copy = ModelEvaluation(tmp_path / "evaluation")
    shutil.copytree(run["evaluation"].path, copy.path, dirs_exist_ok=True)
    doc = copy.read_json("evaluation.json")
    doc["metrics"]["returns"] = [9.0, 12.0, 10.0][:doc["metrics"]["episodes"]]
    copy.write_json("evaluation.json", doc)
    page, _ = render(tmp_path, model=run["model"], evaluation=copy)
    assert set(images(section_html(page, "evaluation"))) == {"return per evaluation episode"}


# ---- registry --------------------------------------------------------------------------------------------------------
def test_a_task_adds_and_replaces_sections_through_the_registry(classification, tmp_path):
    run, _, _ = classification

    @section("toy_task", order=35, name="toy")
    def toy(ctx):
        return f'<section id="toy"><h2>Toy</h2>{ctx.metrics["accuracy"]}</section>'

    @section("toy_task", order=20, name="training")
    def toy_training(ctx):
        return '<section id="training"><h2>Toy training</h2></section>'

    assert [s.name for s in sections_for("toy_task")] == ["data", "validation", "training", "evaluation", "toy",
                                                         "network", "blessing", "models", "device_energy", "search"]
    page, props = render(tmp_path, model=run["model"], evaluation=run["evaluation"], task="toy_task")
    metrics = run["evaluation"].read_json("evaluation.json")["metrics"]
    assert section_html(page, "toy") == f"<h2>Toy</h2>{metrics['accuracy']}"
    assert section_html(page, "training") == "<h2>Toy training</h2>"
    assert next(s for s in sections_for("classification") if s.name == "training").render is not toy_training


def test_unknown_task_parameter_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown task 'nope'.*classification"):
        render(tmp_path, task="nope")


# ---- anomaly ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def anomaly(tmp_path_factory):
    from tests.components.fixtures import _base, _chain, _evaluation

    base = _base(tmp_path_factory)
    chain = _chain(base)
    return {"windows": chain["windows"], "model": chain["model"], "tflite": chain["tflite"],
            "evaluation": _evaluation(base)}


def test_anomaly_report_without_examples_keeps_its_pictures(anomaly, tmp_path):
    page, props = render(tmp_path, model=anomaly["model"], evaluation=anomaly["evaluation"], tflite=anomaly["tflite"])
    assert props["task"] == "anomaly"
    assert set(images(section_html(page, "evaluation"))) == {"anomaly score timeline per series",
                                                             "score histogram normal vs anomalous"}
    assert set(images(page)) == {"training loss per epoch", "anomaly score timeline per series",
                                 "score histogram normal vs anomalous", "energy per op"}
    assert "examples input" in section_html(page, "embedding") and "Activations not drawn" in page
    thresholds = anomaly["evaluation"].read_json("evaluation.json")["thresholds"]
    assert all(f"<td>{v:.4g}</td>" in section_html(page, "models") for v in thresholds.values())


def test_anomaly_report_with_the_windows_draws_embedding_by_label_and_activations(anomaly, tmp_path):
    page, props = render(tmp_path, model=anomaly["model"], evaluation=anomaly["evaluation"],
                         examples=anomaly["windows"], embedding_points=60)
    embedding = section_html(page, "embedding")
    assert set(images(embedding)) == {"bottleneck embedding (PCA)"}
    assert "of 60 inputs (eval + test splits)" in embedding and "colour: label" in embedding
    network = section_html(page, "network")
    layer = re.search(r"<b>([^<]+)</b><span>inspected layer</span>", network).group(1)
    assert set(images(network)) == {f"activations of {layer}"} and layer.startswith("dec_")


def test_per_class_rows_follow_the_confusion_matrix_not_string_order():
    """T10: 12 integer classes came out 0, 1, 10, 11, 2, ... (evaluation.json's keys sorted as strings)."""
    import json
    from types import SimpleNamespace

    from edgepipe.components.report.sections.classification import evaluation

    n = 12
    per_class = {str(c): {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": c + 1} for c in range(n)}
    metrics = json.loads(json.dumps({"accuracy": 1.0, "confusion_matrix": np.diag(np.arange(1, n + 1)).tolist(),
                                     "per_class": per_class}, sort_keys=True))  # as evaluation.json reads back
    assert list(metrics["per_class"])[:4] == ["0", "1", "10", "11"]
    page = evaluation(SimpleNamespace(metrics=metrics, doc=SimpleNamespace(split="test", agreement={})))
    table = page[page.index("Per class"):]
    assert re.findall(r'<tr><td class="l">(\d+)</td>', table) == [str(c) for c in range(n)]
