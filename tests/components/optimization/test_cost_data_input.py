"""The cost model prices an op by its data input: TRANSPOSE_CONV's input 0 is the int32 output_shape tensor (run
time: SHAPE/PACK when the batch is dynamic), so pricing by the first non-constant input made every deconv int32
arithmetic (3.2 pJ a MAC, 10x an int8 MAC) in int8 and float32 models alike."""
import numpy as np
import pytest

from edgepipe.components.optimization.cost import ENERGY_45NM, op_costs

tf = pytest.importorskip("tensorflow")


@pytest.mark.parametrize("mode,kind", [("float32", "float32"), ("int8", "int8")])
def test_transpose_conv_computes_in_its_data_type_not_its_shape_input(mode, kind):
    from edgepipe.components.optimization.tflite import convert

    keras = tf.keras
    inp = keras.Input((16, 2))
    model = keras.Model(inp, keras.layers.Conv1DTranspose(3, 3, strides=2, padding="same")(inp))
    rep = np.random.default_rng(0).normal(size=(32, 16, 2)).astype(np.float32)
    rows = [r for r in op_costs(convert(model, mode, representative=rep if mode == "int8" else None))
            if r["op"] == "TRANSPOSE_CONV"]
    assert rows, "the converter emitted no TRANSPOSE_CONV"
    t = ENERGY_45NM
    per_mac = t[f"{kind}_mult"] + t["int32_add" if kind == "int8" else "float32_add"]
    for row in rows:
        assert row["compute"] == kind
        assert row["compute_pj"] / row["effective_macs"] == pytest.approx(per_mac, rel=0.05)
