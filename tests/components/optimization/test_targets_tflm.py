"""A TFLite Micro target marks fits only what TFLM can run: float16 weights (DEQUANTIZE of float16) and hybrid
dynamic-range ops fail when TFLM allocates tensors, though every op of theirs is in TFLM's resolver. Checked
against the tflite-micro interpreter itself."""
import numpy as np
import pytest

from edgepipe.components.optimization.targets import fit, resolve, tflm_limits

tf = pytest.importorskip("tensorflow")
tflm = pytest.importorskip("tflite_micro")


@pytest.fixture(scope="module")
def variants():
    from edgepipe.components.optimization.tflite import convert

    keras = tf.keras
    inp = keras.Input((16, 4))
    x = keras.layers.Conv1D(64, 3, padding="same", activation="relu")(inp)  # 768 weights
    x = keras.layers.Conv1DTranspose(32, 3, strides=2, padding="same")(x)  # 6144 weights: quantized by dynamic
    model = keras.Model(inp, keras.layers.Conv1D(4, 1)(x))
    rep = np.random.default_rng(0).normal(size=(16, 16, 4)).astype(np.float32)
    return {m: convert(model, m, representative=rep if m == "int8" else None)
            for m in ("float32", "float16", "dynamic", "int8")}


def _tflm_runs(content: bytes) -> bool:
    from tflite_micro import runtime

    from edgepipe.components.optimization.cost import freeze_shapes

    try:
        runtime.Interpreter.from_bytes(freeze_shapes(content)[0], arena_size=1 << 22)
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize("mode,runs", [("float32", True), ("float16", False), ("dynamic", False), ("int8", True)])
def test_tflm_verdict_matches_the_tflm_interpreter(variants, mode, runs):
    content = variants[mode]
    assert _tflm_runs(content) is runs
    assert (not tflm_limits(content)) is runs
    entry = {"mode": mode, "size_bytes": len(content), "ops": [], "cost": {"macs": 1, "arena_bytes": 1024}}
    verdict = fit(entry, resolve("cortex_m7"), content)
    assert verdict["fits"] is runs
    if not runs:
        assert any("TFLite Micro" in r for r in verdict["reasons"])
    assert fit(entry, resolve("linux_arm64"), content)["fits"]  # LiteRT runs all four
