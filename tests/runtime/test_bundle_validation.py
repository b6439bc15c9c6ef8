"""Bundle.load refuses bundles it cannot trust, each with one line naming the file and the key.

Each case copies the real exported bundle and breaks one thing: the schema version, a field's type or range, a
cross-field consistency (channels, shapes, thresholds), or the agreement between bundle.json and the model file
itself (hash, shape, quantization).
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgepipe.runtime import Bundle, BundleError, SUPPORTED_SCHEMA_VERSION, TASKS, UsageError
from edgepipe.runtime import schema
from tests.runtime.fixtures import default_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return default_run(tmp_path_factory)


@pytest.fixture
def bundle_copy(run, tmp_path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(run.bundle, target)
    return target


def edit(bundle: Path, change) -> None:
    path = bundle / "bundle.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def refused(bundle: Path, pattern: str, error=BundleError) -> str:
    with pytest.raises(error) as info:
        Bundle.load(bundle)
    message = str(info.value)
    assert "\n" not in message
    assert re.search(pattern, message), message
    return message


def test_the_exported_bundle_loads_and_describes_itself(run):
    bundle = Bundle.load(run.bundle)
    meta = bundle.metadata()
    assert meta["task"] == "anomaly_detection" and meta["model"] == "model.tflite"
    assert meta["channel_names"] == ["vibration", "temperature", "current"]
    assert meta["window_size"] == 32 and meta["stride"] == 4 and meta["input"]["dtype"] == "int8"


def test_every_registered_task_has_a_schema_and_a_decoder():
    assert set(TASKS) == set(schema.TASK_CHECKS) >= {"anomaly_detection", "classification", "regression"}


def test_newer_schema_version_is_refused_with_upgrade_advice(bundle_copy):
    edit(bundle_copy, lambda d: d.update(schema_version=SUPPORTED_SCHEMA_VERSION + 1))
    message = refused(bundle_copy, rf"schema_version {SUPPORTED_SCHEMA_VERSION + 1} is newer than this runtime "
                                   rf"supports \({SUPPORTED_SCHEMA_VERSION}\)")
    assert "upgrade" in message and "bundle.json" in message


@pytest.mark.parametrize("change, pattern", [
    (lambda d: d.pop("window"), r"missing key 'window'"),
    (lambda d: d.update(schema_version="1"), r"key 'schema_version' must be an integer"),
    (lambda d: d.update(task="segmentation_3d"), r"task 'segmentation_3d' is not supported .*anomaly_detection"),
    (lambda d: d["window"].update(stride=0), r"key 'window.stride' must be >= 1, got 0"),
    (lambda d: d["window"].update(channel_names=["a", "b"]), r"key 'window.channel_names' has 2 names, expected 3"),
    (lambda d: d["normalization"]["scale"].__setitem__(1, 0.0), r"key 'normalization.scale\[1\]' must be > 0"),
    (lambda d: d["normalization"]["center"].pop(), r"key 'normalization.center' has 2 values, expected 3"),
    (lambda d: d["normalization"].update(channels=["current", "temperature", "vibration"]),
     r"key 'normalization.channels' is .* but window.channel_names is"),
    (lambda d: d.update(default_model="missing.tflite"), r"key 'default_model' names 'missing.tflite'"),
    (lambda d: d["models"]["int8"].update(file="../model.tflite"), r"key 'models.int8.file' must be a plain"),
    (lambda d: d["window"].update(size=64), r"key 'window' says \[size 64, channels 3\], but the models' input"),
    (lambda d: d["input"].update(dtype="float32"), r"key 'input' differs from models.int8.input"),
    (lambda d: d["models"]["int8"]["input"].update(quantization=None),
     r"key 'models.int8.input.quantization' is required for a int8 tensor"),
    (lambda d: d["thresholds"].update({"model.tflite": 123.0}),
     r"key 'thresholds.model.tflite' is 123.0, but models.int8.threshold is"),
    (lambda d: d["models"]["int8"].update(threshold=float("nan")) or None,
     r"key 'models.int8.threshold' must be a finite number"),
])
def test_inconsistent_or_invalid_fields_are_refused_naming_the_key(bundle_copy, change, pattern):
    edit(bundle_copy, change)
    assert "bundle.json" in refused(bundle_copy, pattern)


def test_quantization_that_differs_from_the_model_is_refused(bundle_copy):
    def shift(doc):
        for spec in (doc["input"], doc["models"]["int8"]["input"]):
            spec["quantization"]["scale"] *= 1.01
    edit(bundle_copy, shift)
    refused(bundle_copy, r"model.tflite: models.int8.input.quantization \(scale .*\) differs from the model's")


def test_zero_point_that_differs_from_the_model_is_refused(bundle_copy):
    def shift(doc):
        for spec in (doc["output"], doc["models"]["int8"]["output"]):
            spec["quantization"]["zero_point"] += 1
    edit(bundle_copy, shift)
    refused(bundle_copy, r"models.int8.output.quantization .* differs from the model's")


def test_a_swapped_model_file_is_refused(bundle_copy):
    shutil.copyfile(bundle_copy / "model_float32.tflite", bundle_copy / "model.tflite")
    refused(bundle_copy, r"model.tflite: file content does not match models.int8.sha256")


def test_a_damaged_model_is_named_by_its_digest_not_as_a_parse_error(bundle_copy):
    """A truncated copy broke LiteRT's flatbuffer parse first ("not a valid Flatbuffer"), which hid what happened;
    the digest is checked before LiteRT reads the file."""
    model = bundle_copy / "model.tflite"
    model.write_bytes(model.read_bytes()[:-100])
    refused(bundle_copy, r"^model.tflite: file content does not match models.int8.sha256")


def test_a_board_needs_only_bundle_json_and_the_model_it_runs(run, bundle_copy):
    """The other variants' files may be left off a device; the one that runs is verified in full and predicts the
    same; a variant that is present is still digest-checked, and asking for an absent one names it."""
    for extra in bundle_copy.glob("model_*.tflite"):
        extra.unlink()
    series = np.random.default_rng(0).normal(size=(200, 3))
    alone, full = Bundle.load(bundle_copy), Bundle.load(run.bundle)
    np.testing.assert_array_equal(alone.predict(series).window_score, full.predict(series).window_score)
    with pytest.raises(BundleError, match=r"models.float32.file 'model_float32.tflite' is missing from the bundle"):
        Bundle.load(bundle_copy, model="float32")
    shutil.copyfile(bundle_copy / "model.tflite", bundle_copy / "model_float32.tflite")  # present, but not float32
    refused(bundle_copy, r"^model_float32.tflite: file content does not match models.float32.sha256")


@pytest.mark.parametrize("key", ["int8", "float32"])
def test_a_deleted_digest_is_refused_naming_the_key(bundle_copy, key):
    """Without ``sha256`` a swapped model would load and predict; the digest is mandatory, not best-effort."""
    edit(bundle_copy, lambda d: d["models"][key].pop("sha256"))
    shutil.copyfile(bundle_copy / "model_float32.tflite", bundle_copy / "model.tflite")  # the swap it would hide
    assert "bundle.json" in refused(bundle_copy, rf"missing key 'models\.{key}\.sha256'")


def test_check_against_refuses_a_model_entry_without_digest(run):
    """The runner's own check does not trust that the schema ran first."""
    from edgepipe.runtime.litert import ModelRunner

    doc = json.loads((run.bundle / "bundle.json").read_text())
    entry = dict(doc["models"]["int8"])
    entry.pop("sha256")
    runner = ModelRunner((run.bundle / "model.tflite").read_bytes())
    with pytest.raises(BundleError, match=r"missing key 'models\.int8\.sha256'"):
        runner.check_against(entry, "models.int8")


def test_a_model_whose_shape_differs_from_bundle_json_is_refused(bundle_copy):
    """Consistent bundle.json (size 16 everywhere, hashes intact), but the model file takes 32-step windows."""
    def resize(doc):
        doc["window"]["size"] = 16
        for entry in doc["models"].values():
            entry["input"]["shape"][1] = entry["output"]["shape"][1] = 16
        doc["input"]["shape"][1] = doc["output"]["shape"][1] = 16
    edit(bundle_copy, resize)
    refused(bundle_copy, r"models\.\w+\.input\.shape is \[None, 16, 3\], the model's input is \[None, 32, 3\]")


def test_missing_pieces_are_refused(bundle_copy, tmp_path):
    refused(tmp_path / "nowhere", r"nowhere: does not exist")  # not the old, misleading "not a bundle directory"
    (bundle_copy / "model.tflite").unlink()
    refused(bundle_copy, r"models.int8.file 'model.tflite' is missing from the bundle")
    (bundle_copy / "bundle.json").write_text("{not json")
    refused(bundle_copy, r"bundle.json: not valid JSON")
    (bundle_copy / "bundle.json").unlink()
    refused(bundle_copy, r"no bundle.json")


def test_an_unknown_model_choice_lists_the_models(run):
    with pytest.raises(UsageError, match=r"no model 'int4' \(models: .*int8 \(model.tflite\)"):
        Bundle.load(run.bundle, model="int4")
    assert Bundle.load(run.bundle, model="model_float32.tflite").model_key == "float32"


def test_loaded_bundle_does_not_change_when_its_doc_copy_is_mutated(run):
    bundle = Bundle.load(run.bundle)
    bundle.doc["window"]["size"] = 1
    assert bundle.doc["window"]["size"] == 32
