"""Issue 6 parity: for each model family, the TensorFlow-free runtime's answer on raw inputs equals the pipeline's
own evaluation of the very same ``.tflite`` file.

Each family's template runs once (module fixture) on a tiny configuration: few epochs, only the variants needed to
ship an int8 model (``float32`` + ``int8_qat``). The pipeline's per-example outputs come from the evaluation
artifact (``predictions.npz``: inputs and every variant's outputs, computed by the evaluation component) or, for
generators and policies, from the bundle's ``verification.npz`` (the exporter running the shipped file). The runtime
gets raw inputs the way a device would: CSV rows with named columns, the ``.npz`` the pipeline ingested, image
files, latent vectors, observations.
"""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgepipe  # noqa: F401
from edgepipe.pipeline.config import load_config
from edgepipe.pipeline.runner import LocalRunner
from edgepipe.pipeline.templates import build_pipeline
from edgepipe.runtime.bodies import RowsOnly
from edgepipe.runtime.bundle import Bundle

REPO = Path(__file__).resolve().parents[2]
PENGUINS = REPO.parent / "shared" / "datasets" / "penguins" / "penguins_processed.csv"
FAST = ["prune.enabled=false", "cluster.enabled=false", "qat.epochs=1", "convert.variants=[float32, int8_qat]",
        "evaluate.latency_runs=3", "training.patience=0", "convert.representative_samples=50",
        "export.min_agreement=0", "export.max_metric_drop=null"]  # parity, not quality: tiny models ship anyway
CONFIGS = {
    "mlp": ["training.epochs=20"],
    "cnn": ["training.epochs=3", "model.hparams={filters: [8], dense_units: 16, learning_rate: 0.003}"],
    "conv1d": ["training.epochs=3", "model.hparams={filters: [8], kernel_size: 5, learning_rate: 0.003}"],
    "unet": ["training.epochs=2", "model.hparams={filters: [4, 8], learning_rate: 0.003}"],
    "rnn": ["training.epochs=2", "model.hparams={cell: lstm, units: [8], learning_rate: 0.005}"],
    # the supervised template's autoencoder (float32 reconstruction + encoder), on the rnn config's forecast windows
    "autoencoder": ["model.family=autoencoder", "training.epochs=2", "model.hparams={filters: [8, 4]}"],
    "dcgan": ["training.epochs=1", "model.hparams={latent_dim: 8, generator_filters: [8], "
                                   "discriminator_filters: [8]}"],
    "cgan": ["training.epochs=1", "model.hparams={latent_dim: 8, generator_filters: [8], "
                                  "discriminator_filters: [8]}"],
    "dqn": ["model.hparams={env_name: CartPole-v0, units: [8], num_iterations: 20, initial_collect_steps: 32, "
            "batch_size: 8, eval_interval: 10, eval_episodes: 2}", "evaluate.episodes=2"],
}


FLOAT_ONLY = ("rnn", "autoencoder")  # no variant stage: its keys would be refused as unused


def run_family(name: str, root: Path) -> dict:
    fast = [o for o in FAST if name not in ("dcgan", "cgan") or not o.startswith("training.patience")]  # no early stop
    if name in FLOAT_ONLY:
        fast = [o for o in fast if not o.startswith(("prune.", "cluster.", "qat.", "convert."))]
    cfg = load_config(REPO / "configs" / f"{name}.yaml",
                      [f"pipeline.root={root}", *([] if name in ("dqn",) else fast), *CONFIGS[name]])
    if name == "autoencoder":
        cfg = load_config(REPO / "configs" / "rnn.yaml", [f"pipeline.root={root}", *fast, *CONFIGS[name]])
    if name == "mlp":
        cfg = load_config(REPO / "configs" / "mlp.yaml",
                          [f"pipeline.root={root}", f"data.source={PENGUINS}", *FAST, *CONFIGS[name]])
    pipeline = build_pipeline(cfg)  # the shipped path: components.data's Beam ingest (unet: per-pixel masks)
    result = LocalRunner(root).run(pipeline)
    assert result.status == "complete", result.error
    bundle = result.artifact("export_bundle", "bundle").path
    evaluation = result.artifact([n for n in result.nodes if n.startswith("evaluate")][0], "evaluation").path
    first = result.nodes[pipeline.nodes[0].name].outputs  # the ingested rows, before any transform (an
    raw = first["examples"].open() if "examples" in first else None  # environment's policy has none)
    return {"bundle": bundle, "evaluation": evaluation, "raw": raw}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            cache[name] = run_family(name, tmp_path_factory.mktemp(name))
        return cache[name]

    return get


def pipeline_outputs(run: dict, bundle: Bundle) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, outputs of the shipped model)`` from the evaluation's per-example predictions."""
    with np.load(run["evaluation"] / "predictions.npz") as saved:
        return saved["x"], saved[bundle.doc["primary_variant"]]


def test_mlp_csv_rows_match_the_evaluation(runs, tmp_path):
    """Raw CSV rows (the ingested test split, columns shuffled, an extra one) go through the bundle's transform to
    exactly the evaluation's inputs, and the runtime's answers equal the evaluation's."""
    from edgepipe.components.data.beam.example_decode import iter_examples

    run = runs("mlp")
    bundle = Bundle.load(run["bundle"])
    doc = bundle.doc
    assert doc["task"] == "classification" and doc["quantization"]["int8"] and doc["input"]["dtype"] == "int8"
    x, expected = pipeline_outputs(run, bundle)
    columns = doc["preprocessing"]["columns"]
    assert columns == ["body_mass_g", "culmen_depth_mm", "culmen_length_mm", "flipper_length_mm"]
    assert sorted(doc["preprocessing"]["features"]) == columns  # numeric columns: scaled, one input each
    raw = list(iter_examples(run["raw"], doc["metrics"]["split"]))
    assert len(raw) == len(x)
    cells = [[repr(float(r[c][0])) for c in reversed(columns)] for r in raw]
    table = tmp_path / "rows.csv"  # columns shuffled, an extra one: the runtime picks by name
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["note", *reversed(columns)])
        writer.writerows([["x", *row] for row in cells])
    prepared, skew = bundle.impl.table.prepare({c: [row[i] for row in cells] for i, c in enumerate(reversed(columns))})
    np.testing.assert_array_equal(prepared, x)  # the runtime's transform == the pipeline's, bit for bit
    out = tmp_path / "out.jsonl"
    done = subprocess.run([sys.executable, "-m", "edgepipe.runtime", "predict", str(run["bundle"]), str(table),
                           "-o", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    rows = [r for r in records if "class" in r]
    assert [r["class"] for r in rows] == expected.argmax(1).tolist()
    np.testing.assert_allclose([r["probabilities"] for r in rows], expected, atol=1e-6)
    assert [r["skew"]["rows"] for r in records if "skew" in r] == [len(x)] == [skew["rows"]]
    assert bundle.predict(x, kind="transformed").probabilities.tolist() == expected.tolist()  # explicit opt-in
    with pytest.raises(RowsOnly, match=r'send them as \{"rows"'):  # numbers alone would skip the transform
        bundle.predict(x)


def test_cnn_npz_and_image_files_match_the_evaluation(runs, tmp_path):
    from PIL import Image

    run = runs("cnn")
    bundle = Bundle.load(run["bundle"])
    x, expected = pipeline_outputs(run, bundle)
    assert bundle.doc["primary_variant"] == "int8_qat" and bundle.doc["labels"] == [str(i) for i in range(10)]
    np.savez(tmp_path / "digits.npz", x=x)
    result = bundle.predict(x)
    np.testing.assert_array_equal(result.probabilities, expected)
    out = tmp_path / "out.jsonl"
    done = subprocess.run([sys.executable, "-m", "edgepipe", "predict", str(run["bundle"]), str(tmp_path / "digits.npz"),
                           "-o", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert [json.loads(r)["class"] for r in out.read_text().splitlines()] == expected.argmax(1).tolist()
    # An 8-bit image file: the runtime scales by preprocessing.image (1/255) as the pipeline's 0..1 data.
    pixels = np.round(x[0, ..., 0] * 255).astype(np.uint8)
    Image.fromarray(pixels, mode="L").save(tmp_path / "digit.png")
    done = subprocess.run([sys.executable, "-m", "edgepipe", "predict", str(run["bundle"]), str(tmp_path / "digit.png")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    from_file = json.loads(done.stdout.splitlines()[0])["probabilities"]
    np.testing.assert_allclose(from_file, bundle.predict(pixels[..., None] / 255.0).probabilities[0], atol=1e-6)


def test_conv1d_raw_series_match_the_evaluation(runs):
    run = runs("conv1d")
    bundle = Bundle.load(run["bundle"])
    x, expected = pipeline_outputs(run, bundle)
    assert x.ndim == 3 and bundle.doc["preprocessing"]["kind"] == "sequence"
    np.testing.assert_array_equal(bundle.predict(x).probabilities, expected)


def test_rnn_raw_series_match_the_shipped_float_model(runs):
    """LSTM has no int8 path: the float32 file ships, and the exporter's own run of that very file on the
    evaluation's inputs (verification.npz) is what the runtime must reproduce from the raw series windows."""
    run = runs("rnn")
    bundle = Bundle.load(run["bundle"])
    doc = bundle.doc
    assert doc["primary_variant"] == "float32" and doc["quantization"]["reason"] and not doc["quantization"]["int8"]
    with np.load(run["bundle"] / "verification.npz") as saved:
        x, expected = saved["x"], saved["output"]
    with np.load(run["evaluation"] / "predictions.npz") as evaluated:
        np.testing.assert_array_equal(x, evaluated["x"][:len(x)])  # raw series windows as the pipeline ingested them
        np.testing.assert_allclose(expected, evaluated["keras"][:len(x)], atol=1e-4)  # the file is the model
    assert len(x) and x.ndim == 3
    np.testing.assert_allclose(bundle.predict(x).values, expected.reshape(len(x), -1), rtol=0, atol=1e-6)


def test_supervised_autoencoder_ships_a_loadable_reconstruction_bundle_and_its_encoder(runs):
    """task ``reconstruction``: the runtime loads it and reproduces the exporter's run of the shipped file
    (reconstruction and MSE score); the bottleneck embedding ships as ``encoder.tflite``, described in bundle.json."""
    run = runs("autoencoder")
    bundle = Bundle.load(run["bundle"])
    doc = bundle.doc
    assert bundle.task == "reconstruction" and doc["score"]["kind"] == "reconstruction_mse"
    with np.load(run["bundle"] / "verification.npz") as saved:
        x, expected = saved["x"], saved["output"]
    result = bundle.predict(x)
    np.testing.assert_allclose(result.reconstruction, expected, rtol=0, atol=1e-6)
    want = ((x.astype(np.float64) - expected) ** 2).reshape(len(x), -1).mean(axis=1)
    np.testing.assert_allclose(result.score, want, rtol=1e-5)
    encoder = doc["encoder"]
    assert (run["bundle"] / encoder["file"]).is_file() and encoder["input"]["shape"] == doc["input"]["shape"]
    assert encoder["output"]["shape"][1:] == [8, 4]  # 32 steps halved twice, 4 filters: the bottleneck
    assert encoder["max_abs_diff_vs_keras"] <= 1e-3


def test_unet_masks_match_the_evaluation(runs):
    run = runs("unet")
    bundle = Bundle.load(run["bundle"])
    assert bundle.task == "segmentation" and bundle.doc["labels"] == ["background", "circle", "square", "triangle"]
    x, expected = pipeline_outputs(run, bundle)
    result = bundle.predict(x[:8])
    np.testing.assert_array_equal(result.probabilities, expected[:8])
    assert result.masks.shape == x[:8, ..., 0].shape
    np.testing.assert_array_equal(result.masks, expected[:8].argmax(-1))


@pytest.mark.parametrize("family", ["dcgan", "cgan"])
def test_generator_latents_match_the_pipeline(runs, family):
    run = runs(family)
    bundle = Bundle.load(run["bundle"])
    doc = bundle.doc
    assert doc["task"] == "generation"
    # int8 ships when it is within the export bounds (opened here), else float32 with the reason
    assert doc["quantization"]["int8"] or doc["quantization"]["reason"]
    rows = {r["variant"]: r for r in json.loads((run["bundle"] / "variants.json").read_text())}
    assert {"keras", "float32", "int8_qat"} <= set(rows) and rows["int8_qat"]["mean_abs_pixel_diff"] is not None
    with np.load(run["bundle"] / "verification.npz") as saved:
        latent, expected = saved["latent"], saved["output"]
        labels = saved["label"] if "label" in saved.files else None
        seed = int(saved["seed"])
    request = {"latent": latent, **({"label": labels} if labels is not None else {})}
    result = bundle.predict(request)
    np.testing.assert_allclose(result.samples, expected, atol=1e-6)
    assert 0 <= result.samples.min() and result.samples.max() <= 1
    # The fixed-seed option draws the pipeline's own latents.
    seeded = bundle.predict({"n": len(latent), "seed": seed, **({"label": labels} if labels is not None else {})})
    np.testing.assert_array_equal(seeded.latent, latent)
    np.testing.assert_allclose(seeded.samples, expected, atol=1e-6)
    assert (labels is not None) == (family == "cgan")


def test_dqn_greedy_actions_match_the_pipeline(runs):
    pytest.importorskip("tf_agents", reason="the rl extra is not installed")
    run = runs("dqn")
    bundle = Bundle.load(run["bundle"])
    assert bundle.task == "policy" and bundle.doc["policy"]["env_name"] == "CartPole-v0"
    rows = {r["variant"]: r for r in json.loads((run["bundle"] / "variants.json").read_text())}
    assert {"keras", "float32", "int8_ptq", "int8_qat"} <= set(rows) and rows["int8_ptq"]["agreement"] is not None
    assert bundle.doc["quantization"]["int8"] or bundle.doc["quantization"]["reason"]
    with np.load(run["bundle"] / "verification.npz") as saved:
        obs, q = saved["x"], saved["output"]
    result = bundle.predict(obs)
    np.testing.assert_allclose(result.q_values, q, atol=1e-6)
    assert result.actions.tolist() == q.argmax(1).tolist()


def test_predicting_a_classification_bundle_imports_no_tensorflow(runs):
    run = runs("mlp")
    code = ("import sys, numpy as np\n"
            "from edgepipe.runtime.bundle import Bundle\n"
            f"b = Bundle.load({str(run['bundle'])!r})\n"
            "r = b.predict([{'body_mass_g': 4000.0}, {'culmen_length_mm': 44.5}])\n"  # raw rows, the default
            "bad = [m for m in ('tensorflow', 'tf_keras', 'apache_beam') if m in sys.modules]\n"
            "print(len(r.classes), bad)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2 []"


def _post(url: str, body) -> tuple[int, dict]:
    import http.client
    from urllib.parse import urlparse

    parsed = urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    try:
        conn.request("POST", "/predict", body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.mark.parametrize("family", ["dcgan", "cgan"])
def test_serve_generation_bodies_over_a_socket(runs, family):
    """``edgepipe serve`` on a generation bundle: {"n", "seed", "label"} and {"latent", "label"} bodies give the
    exporter's own samples (verification.npz); malformed bodies get 400/422 in the task's terms."""
    pytest.importorskip("fastapi", reason="the 'serve' extra (fastapi, uvicorn) is not installed")
    from edgepipe.runtime.server import running

    run = runs(family)
    with np.load(run["bundle"] / "verification.npz") as saved:
        latent, expected, seed = saved["latent"], saved["output"], int(saved["seed"])
        labels = saved["label"].reshape(-1).tolist() if "label" in saved.files else None
    extra = {"label": labels} if labels is not None else {}
    with running(Bundle.load(run["bundle"])) as url:
        for body in ({"n": len(latent), "seed": seed, **extra}, {"latent": latent.tolist(), **extra}):
            status, out = _post(url, body)
            assert status == 200, out
            assert out["task"] == "generation" and len(out["predictions"]) == len(latent)
            np.testing.assert_allclose([p["sample"] for p in out["predictions"]], expected, atol=1e-6)
            if labels is not None:
                assert [p["label"] for p in out["predictions"]] == labels
        bad = [({"n": 2, "latent": latent[:2].tolist()}, 400, "exactly one of"),
               ({"n": 2, "seed": 0, "noise": 1}, 400, "unknown key"),
               ({"n": "two"}, 422, "n: must be an integer"),
               ({"latent": [[1.0, "x"]]}, 422, "not a number"),
               ({"latent": [[0.0] * (latent.shape[1] + 1)], **({"label": [0]} if labels else {})}, 422, "latent")]
        bad.append(({"n": 2}, 422, "needs 'label'") if labels is not None else
                   ({"n": 2, "label": [0, 1]}, 422, "not conditional"))
        for body, code, message in bad:
            status, out = _post(url, body)
            assert status == code and message in out["error"], (body, status, out)


def test_serve_policy_observations_over_a_socket(runs):
    """``edgepipe serve`` on a policy bundle: {"observations": [[...]]} (or "features") -> greedy actions and
    Q-values equal to the exporter's (verification.npz)."""
    pytest.importorskip("fastapi", reason="the 'serve' extra (fastapi, uvicorn) is not installed")
    pytest.importorskip("tf_agents", reason="the rl extra is not installed")
    from edgepipe.runtime.server import running

    run = runs("dqn")
    with np.load(run["bundle"] / "verification.npz") as saved:
        obs, q = saved["x"], saved["output"]
    with running(Bundle.load(run["bundle"])) as url:
        for key in ("observations", "features"):
            status, out = _post(url, {key: obs.tolist()})
            assert status == 200, out
            assert [p["action"] for p in out["predictions"]] == q.argmax(1).tolist()
            np.testing.assert_allclose([p["q_values"] for p in out["predictions"]], q, atol=1e-6)
        status, out = _post(url, {"observations": obs[:1].tolist(), "features": obs[:1].tolist()})
        assert status == 400 and "exactly one of" in out["error"]
        status, out = _post(url, {"latent": [[0.0]]})
        assert status == 400 and "observations" in out["error"]
