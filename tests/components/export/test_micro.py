"""The TFLite Micro export: C source checks (no compiler needed) and the model run under TFLM against LiteRT."""
import re

import numpy as np
import pytest

from edgepipe.components.export.micro import c_source, micro_check, missing_ops

tf = pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def int8_model():
    from edgepipe.components.optimization.tflite import convert

    keras = tf.keras
    inp = keras.Input((16, 3))
    x = keras.layers.Conv1D(8, 3, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inp, keras.layers.Dense(4, activation="softmax")(x))
    rep = np.random.default_rng(0).normal(size=(64, 16, 3)).astype(np.float32)
    return convert(model, "int8", representative=rep)


def test_c_source(int8_model):
    cc, h = c_source(int8_model, "g_model", arena_bytes=1000)
    body = cc[cc.index("{"):cc.index("};")]
    assert len(re.findall(r"0x[0-9a-f]{2}", body)) == len(int8_model)
    assert f"const unsigned int g_model_len = {len(int8_model)};" in cc
    assert "alignas(16) const unsigned char g_model[]" in cc
    assert "constexpr std::size_t kTensorArenaSize = 1008;" in h  # rounded up to 16
    assert "extern const unsigned char g_model[];" in h
    with pytest.raises(ValueError):
        c_source(int8_model, "not a name")


def test_tflm_matches_litert_and_records_arena(int8_model):
    pytest.importorskip("tflite_micro", reason="tflite-micro is not installed (pip install '.[micro]')")
    assert missing_ops(int8_model) == []
    x = np.random.default_rng(1).integers(-128, 128, size=(8, 16, 3)).astype(np.int8)
    result = micro_check(int8_model, [x])
    assert result["ok"], result
    assert result["examples"] == 8 and result["reference_max_abs_diff_lsb"] == 0  # the same integer kernels
    assert result["max_abs_diff_lsb"] <= 1  # LiteRT as deployed (XNNPACK) on this small graph
    assert result["arena_bytes"] > 0
    assert result["arena_head_bytes"] + result["arena_tail_bytes"] == result["arena_bytes"]
    assert abs(result["arena_estimate_bytes"] / result["arena_bytes"] - 1) < 0.10


def test_c_source_compiles_and_is_aligned(int8_model, tmp_path):
    import shutil
    import subprocess

    cxx = shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler on this machine (g++/clang++)")
    cc, h = c_source(int8_model, "g_model")
    (tmp_path / "model_data.cc").write_text(cc)
    (tmp_path / "model_data.h").write_text(h)
    (tmp_path / "main.cc").write_text(
        '#include <cstdint>\n#include "model_data.h"\nint main() {\n'
        f'  return (reinterpret_cast<std::uintptr_t>(g_model) % 16 == 0 && g_model_len == {len(int8_model)}u\n'
        '          && kTensorArenaSize % 16 == 0 && g_model[4] == \'T\' && g_model[7] == \'3\') ? 0 : 1;\n}\n')
    subprocess.run([cxx, "-std=c++17", "-O0", "-o", "check", "main.cc", "model_data.cc"], cwd=tmp_path, check=True)
    assert subprocess.run([str(tmp_path / "check")]).returncode == 0


def test_divergence_is_named(int8_model):
    pytest.importorskip("tflite_micro", reason="tflite-micro is not installed (pip install '.[micro]')")
    from edgepipe.components.export.micro import first_divergence

    x = np.random.default_rng(2).integers(-128, 128, size=(1, 16, 3)).astype(np.int8)
    assert first_divergence(int8_model, [x]) is None  # same integer kernels: nothing to name
