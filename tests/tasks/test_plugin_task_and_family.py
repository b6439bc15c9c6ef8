"""Issue 13's proof: a task and a family registered from a module under tests/ run end to end to a validated
bundle, through the same builder, evaluation, export gate, report and runtime as the built-in ones."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgepipe.pipeline.config import load_config
from edgepipe.pipeline.runner import LocalRunner
from edgepipe.pipeline.templates import build_pipeline, resolve
from edgepipe.runtime.bundle import Bundle
from tests.tasks import toy_plugin  # noqa: F401  (registers the counting task and the tiny_dense family)

FEATURES = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A count (how many of four features are positive) from the features themselves: learnable, exact."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 4)).astype(np.float32)
    count = (x > 0).sum(axis=1)
    path = tmp_path_factory.mktemp("toy") / "count.csv"
    rows = ["a,b,c,d,count", *(",".join(f"{v:.5f}" for v in row) + f",{c}" for row, c in zip(x, count))]
    path.write_text("\n".join(rows) + "\n")
    return path


def config(table, root, *extra):
    """The user's YAML for the plugin (as README's "Add a task" writes it), plus ``--set`` style overrides."""
    path = root.parent / f"{root.name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""
pipeline: {{name: toy, template: supervised, root: {root}}}
data: {{source: {table}, label_column: count, feature_columns: {json.dumps(FEATURES)}}}
model: {{family: tiny_dense, task: counting, hparams: {{units: 32}}}}
training: {{epochs: 60, batch_size: 32, patience: 0}}
prune: {{enabled: false}}
cluster: {{enabled: false}}
qat: {{enabled: false}}
convert: {{variants: [float32, int8_ptq]}}
evaluate: {{latency_runs: 3}}
export: {{min_agreement: 0.9}}
""")
    return load_config(path, list(extra))


def test_the_registries_list_the_plugin_everywhere_they_are_derived(table, tmp_path):
    from edgepipe import tasks
    from edgepipe.models.registry import families

    assert "counting" in tasks.names(configurable=True) and tasks.runtime_tasks()["counting"] == "regression"
    assert "counting" in tasks.templates()["supervised"] and "tiny_dense" in families()
    plan = resolve(config(table, tmp_path))
    assert (plan.task.name, plan.family.name, plan.variants) == ("counting", "tiny_dense", "full")
    with pytest.raises(Exception, match="model family 'tiny_dense' does not do task 'regression'"):
        resolve(config(table, tmp_path, "model.task=regression"))


def test_a_plugin_task_and_family_run_end_to_end_to_a_validated_bundle(table, tmp_path):
    result = LocalRunner(tmp_path / "root").run(build_pipeline(config(table, tmp_path / "root")))
    assert result.status == "complete", result.error
    assert list(result.nodes) == ["ingest_csv", "compute_statistics", "infer_schema", "validate_examples",
                                  "transform_features", "train_model", "convert_tflite", "evaluate",
                                  "render_report", "export_bundle"]
    out = result.artifact("export_bundle", "bundle").path
    doc = json.loads((out / "bundle.json").read_text())
    assert doc["task"] == "regression" and doc["family"] == "tiny_dense" and doc["target_names"] == ["count"]
    assert doc["metrics"]["metric_name"] == "exact_count" and doc["primary_variant"] == "int8_ptq"
    pre = doc["preprocessing"]  # the table's fitted transform ships with it (numeric columns: scaling only)
    assert (pre["kind"], pre["features"], pre["columns"]) == ("table", FEATURES, FEATURES)
    assert pre["transform"]["outputs"] == FEATURES and set(pre["schema"]["features"]) == {*FEATURES, "label"}
    keras_exact = doc["metrics"]["per_model"]["keras"]["all"]["exact_count"]
    assert keras_exact > 0.8, keras_exact  # the family learned the task
    rows = {r["variant"]: r for r in json.loads((out / "variants.json").read_text())}
    assert rows["int8_ptq"]["metric_name"] == "exact_count" and rows["int8_ptq"]["agreement"] >= 0.9
    assert (out / "report.html").stat().st_size > 1000 and (out / "SUMMARY.md").exists()
    # the runtime, which imports nothing of the pipeline, loads and runs it like any regression bundle
    bundle = Bundle.load(out)
    with np.load(out / "verification.npz") as check:  # the device-side check: same inputs, same outputs
        x, expected = check["x"], check["output"]
    got = bundle.predict(x, kind="transformed").values  # verification.npz holds the transformed model input
    np.testing.assert_allclose(got.reshape(len(expected), -1), expected.reshape(len(expected), -1), atol=1e-5)
    answer = bundle.predict({"a": [1.0], "b": [1.0], "c": [-1.0], "d": [1.0]})  # raw rows, transformed by the bundle
    assert answer.names == ["count"] and round(float(answer.values[0, 0])) == 3, answer
