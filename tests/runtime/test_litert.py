"""The one LiteRT wrapper (``runtime/litert.py``) the pipeline and the runtime share: the quantization rule, batching,
multi-input by name, latency, op names, ``io_spec`` (what every bundle writes) and the documented latent sampler."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgepipe.runtime.litert import (LATENT_SAMPLER, ModelRunner, TensorSpec, dequantize, io_spec, quantize,
                                     sample_latent)
from tests.runtime.fixtures import default_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return default_run(tmp_path_factory)


def test_quantize_is_the_pipelines_rule_bit_for_bit():
    spec = TensorSpec("x", (None, 4), np.dtype(np.int8), scale=0.0372, zero_point=-5)
    x = np.linspace(-8, 8, 1001, dtype=np.float32)
    want = np.clip(np.round(x / np.float32(0.0372)) + np.float32(-5), -128, 127).astype(np.int8)
    np.testing.assert_array_equal(quantize(x, spec), want)
    q = np.arange(-128, 128, dtype=np.int8)
    np.testing.assert_array_equal(dequantize(q, spec), (q.astype(np.float32) + 5) * np.float32(0.0372))
    plain = TensorSpec("x", (None, 4), np.dtype(np.float32), scale=None, zero_point=None)
    assert quantize(x.astype(np.float64), plain).dtype == np.float32
    label = TensorSpec("label", (None, 1), np.dtype(np.int32), scale=None, zero_point=None)
    np.testing.assert_array_equal(quantize(np.array([[0], [2]]), label), np.array([[0], [2]], np.int32))


def test_sample_latent_is_the_documented_line():
    n, latent_dim, seed = 5, 7, 3
    documented = eval(LATENT_SAMPLER, {"numpy": np, "float32": np.float32, "n": n, "latent_dim": latent_dim,
                                       "seed": seed})
    got = sample_latent(n, latent_dim, seed)
    assert got.dtype == np.float32 and got.shape == (n, latent_dim)
    np.testing.assert_array_equal(got, documented)


def test_batches_chunks_and_one_by_one_give_the_same_scores(run):
    path = run.bundle / "model.tflite"
    runner = ModelRunner(path)
    assert runner.name == "model.tflite" and runner.dynamic_batch and runner.input.quantized
    x = np.random.default_rng(0).normal(size=(20, *runner.input.shape[1:])).astype(np.float32)
    whole = runner.run(x)
    calls = []
    chunked = ModelRunner(path.read_bytes(), max_batch=7).run(x, each=lambda done, total: calls.append((done, total)))
    np.testing.assert_array_equal(whole, chunked)
    assert calls == [(0, 20), (7, 20), (14, 20), (20, 20)]
    np.testing.assert_array_equal(whole, ModelRunner(path, max_batch=1).run(x))
    np.testing.assert_array_equal(whole, runner.run_named({runner.input.name: x}))
    np.testing.assert_array_equal(whole, runner.run_named(runner.by_name([x], ["window"])))
    assert runner.run(x[:0]).shape == (0, *runner.output.shape[1:])
    with pytest.raises(ValueError, match="no value for input"):
        runner.run_named({"other": x})


def test_io_spec_is_what_the_bundle_wrote_and_latency_and_ops_are_measured(run):
    doc = json.loads((run.bundle / "bundle.json").read_text())
    for entry in doc["models"].values():
        content = (run.bundle / entry["file"]).read_bytes()
        assert io_spec(content) == {"input": entry["input"], "output": entry["output"]}
        runner = ModelRunner(content)
        assert runner.latency_us(runs=3, warmup=1) > 0
        ops = runner.op_names()
        assert ops == sorted(set(ops)) and ops
