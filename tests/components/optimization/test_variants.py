"""Every optimization on every quantizable family, proven from weights and converted files (tiny models).

QAT and pruning on Dense (mlp), Conv2D+BN (cnn), Conv2DTranspose and the Conv1D autoencoder; PQAT keeping Conv1D
zeros; 2:4 structure; clustering bounds; uint8 I/O; an op with no int8 kernel; the variant components end to end.
"""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from edgepipe.components.optimization import cluster_model, convert_tflite, prune_model, quantize_model
from edgepipe.components.optimization.clustering import cluster_with_report, unique_kernel_values
from edgepipe.components.optimization.pruning import (is_2_4_sparse, layer_sparsity, measured_sparsity,
                                                      prune_with_report)
from edgepipe.components.optimization.qat import quantize_aware
from edgepipe.components.optimization.tflite import FullIntegerError, convert, float_ops
from edgepipe.tasks.variants import DEFAULT_VARIANTS, active_variants, primary_variant
from edgepipe.pipeline.artifacts import Model, TFLiteModels
from edgepipe.pipeline.config import load_config
from edgepipe.pipeline.errors import ConfigError
from edgepipe.runtime.litert import ModelRunner

RNG = np.random.default_rng(0)


def _mlp():
    from edgepipe.models.registry import build
    from edgepipe.models.spec import DataSpec

    return build("mlp", spec=DataSpec(input_shape=(6,), task="classification", num_classes=3), units=[16, 8])


def _cnn():
    from edgepipe.models.registry import build
    from edgepipe.models.spec import DataSpec

    return build("cnn", spec=DataSpec(input_shape=(8, 8, 1), task="classification", num_classes=3), filters=[4, 8],
                 dense_units=8)


def _conv2d_transpose():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="down")(inputs)
    x = keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu", name="up")(x)
    outputs = keras.layers.Conv2D(1, 3, padding="same", name="out")(x)
    return keras.Model(inputs, outputs)


def _conv1d_autoencoder():
    from edgepipe.models.autoencoder import build_conv1d_autoencoder

    return build_conv1d_autoencoder(16, 2, filters=[8, 4], kernel_size=3)


def _conv1d_classifier():
    """The conv1d family: Conv1D blocks with MaxPooling1D, which tfmot's registry leaves out (PQAT raised on it).
    Without batch norm: a BatchNormalization after a Conv1D is not folded by tfmot and is reported as float
    (``test_layers_qat_cannot_cover_are_named_never_skipped``'s rule), which is not what this case checks."""
    from edgepipe.models.registry import build
    from edgepipe.models.spec import DataSpec

    return build("conv1d", spec=DataSpec(input_shape=(32, 1), task="classification", num_classes=3), filters=[4, 8],
                 kernel_size=3, batch_norm=False)


BUILDERS = {  # name -> (builder, x, y, loss)
    "mlp_dense": (_mlp, RNG.normal(size=(48, 6)), RNG.integers(0, 3, 48), "sparse_categorical_crossentropy"),
    "cnn_conv2d_bn": (_cnn, RNG.normal(size=(48, 8, 8, 1)), RNG.integers(0, 3, 48), "sparse_categorical_crossentropy"),
    "conv2d_transpose": (_conv2d_transpose, RNG.normal(size=(48, 8, 8, 1)), None, "mse"),
    "conv1d_autoencoder": (_conv1d_autoencoder, RNG.normal(size=(48, 16, 2)), None, "mse"),
    "conv1d_maxpool1d": (_conv1d_classifier, RNG.normal(size=(48, 32, 1)), RNG.integers(0, 3, 48),
                         "sparse_categorical_crossentropy"),
}


@pytest.mark.parametrize("name", BUILDERS)
def test_pruning_and_qat_on_each_quantizable_builder(name):
    build, x, y, loss = BUILDERS[name]
    x = x.astype(np.float32)
    y = x if y is None else y
    model = build()
    pruned, report = prune_with_report(model, x, target_sparsity=0.5, epochs=1, batch_size=16, y_train=y, loss=loss)
    assert report["not_pruned"] == [] and report["pruned"]
    assert measured_sparsity(pruned) == pytest.approx(0.5, abs=0.03)

    qat, qreport = quantize_aware(pruned, scheme="pqat")
    assert qreport["not_quantized"] == [], qreport["not_quantized"]
    qat.compile(optimizer=keras.optimizers.Adam(1e-4), loss=loss)
    qat.fit(x, y, batch_size=16, epochs=1, verbose=0)
    content = convert(qat, "int8", representative=x[:16])
    assert float_ops(content) == []
    runner = ModelRunner(content)
    assert runner.input.dtype == np.int8
    assert runner.run(x[:4]).shape == qat.predict(x[:4], verbose=0).shape


def test_layers_qat_cannot_cover_are_named_never_skipped():
    inputs = keras.Input((8, 2))
    x = keras.layers.LSTM(4, return_sequences=True, name="lstm")(inputs)
    outputs = keras.layers.Dense(2, name="head")(x)
    _, report = quantize_aware(keras.Model(inputs, outputs))
    assert [(i["layer"], i["class"]) for i in report["not_quantized"]] == [("lstm", "LSTM")]
    assert report["default"] == ["head"]


def test_pqat_keeps_conv1d_zeros_through_its_own_quantize_config():
    """tfmot's PQAT scheme leaves explicitly-configured layers alone; edgepipe's Conv1D config must mask them."""
    x = RNG.normal(size=(48, 16, 2)).astype(np.float32)
    pruned, _ = prune_with_report(_conv1d_autoencoder(), x, target_sparsity=0.6, epochs=1, batch_size=16)
    before = layer_sparsity(pruned)
    results = {}
    for scheme in ("default", "pqat"):
        qat, report = quantize_aware(pruned, scheme=scheme)
        qat.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
        qat.fit(x, x, batch_size=16, epochs=2, verbose=0)  # no KeepSparsity callback on purpose
        results[scheme] = {k.removeprefix("quant_"): v for k, v in layer_sparsity(qat).items()}
        if scheme == "pqat":
            assert set(report["preserved_by"].values()) == {"edgepipe_config"}
    assert all(results["pqat"][name] >= s - 1e-9 for name, s in before.items())
    assert measured_sparsity(pruned) - np.mean(list(results["default"].values())) > 0.3  # plain QAT regrows


def test_pqat_falls_back_to_the_callback_for_layers_the_scheme_rejects():
    _, report = quantize_aware(_conv2d_transpose(), scheme="pqat")
    assert report["preserved_by"] == {"down": "scheme", "up": "callback", "out": "scheme"}


def test_structured_2_4_where_tfmot_supports_it_read_from_the_weights():
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2d")(inputs)
    x = keras.layers.Reshape((64, 8), name="seq")(x)
    x = keras.layers.Conv1D(8, 3, padding="same", name="conv1d")(x)
    x = keras.layers.Flatten(name="flat")(x)
    outputs = keras.layers.Dense(8, name="dense")(x)
    model = keras.Model(inputs, outputs)
    x_train = RNG.normal(size=(32, 8, 8, 4)).astype(np.float32)
    y_train = RNG.normal(size=(32, 8)).astype(np.float32)
    pruned, report = prune_with_report(model, x_train, target_sparsity=0.5, epochs=1, batch_size=16,
                                       y_train=y_train, structured_2_4=True, skip_layers=["dense"])
    assert report["structured_2_4"] == ["conv2d"] and report["unstructured_fallback"] == ["conv1d"]
    assert report["skipped"] == ["dense"]
    assert is_2_4_sparse(pruned.get_layer("conv2d").kernel.numpy())
    assert not is_2_4_sparse(model.get_layer("conv2d").kernel.numpy())
    assert layer_sparsity(pruned)["dense"] == 0.0
    with pytest.raises(ConfigError, match="skip_layers names unknown layer"):
        prune_with_report(model, x_train, epochs=1, y_train=y_train, skip_layers=["nope"])


def _kernel_codes(content: bytes) -> list[np.ndarray]:
    """The int8 weight tensors of every conv op, read from the .tflite file."""
    interpreter = Interpreter(model_content=content,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    weights = {"CONV_2D": 1, "TRANSPOSE_CONV": 1, "FULLY_CONNECTED": 1}
    return [interpreter.get_tensor(op["inputs"][weights[op["op_name"]]])
            for op in interpreter._get_ops_details() if op["op_name"] in weights]


def test_clustering_bounds_unique_values_in_keras_and_in_the_int8_file():
    x = RNG.normal(size=(48, 16, 2)).astype(np.float32)
    clustered, report = cluster_with_report(_conv1d_autoencoder(), x, number_of_clusters=6, epochs=1, batch_size=16)
    assert report["not_clustered"] == [] and len(report["clustered"]) == 5
    assert all(n <= 6 for n in unique_kernel_values(clustered).values())
    codes = _kernel_codes(convert(clustered, "int8", representative=x[:16]))
    # PTQ scales conv kernels per output channel (axis 0 in TFLite): the bound holds channel by channel.
    assert len(codes) == 5 and all(len(np.unique(channel)) <= 6 for c in codes for channel in c)


def test_a_kernel_smaller_than_the_cluster_count_keeps_its_weights_and_is_reported():
    """model.filters=[1, 2, 3] on the default autoencoder made tfmot fail (16 clusters, a 14-weight kernel)."""
    inputs = keras.Input((16, 2))
    x = keras.layers.Conv1D(1, 7, padding="same", name="tiny")(inputs)  # 7 x 2 x 1 = 14 kernel weights
    model = keras.Model(inputs, keras.layers.Conv1D(2, 7, padding="same", name="wide")(x))
    x_train = RNG.normal(size=(32, 16, 2)).astype(np.float32)
    model.compile("adam", "mse")
    clustered, report = cluster_with_report(model, x_train, number_of_clusters=16, epochs=1, batch_size=16)
    assert report["clustered"] == [] and [r["layer"] for r in report["not_clustered"]] == ["tiny", "wide"]
    assert "14 kernel weights, fewer than number_of_clusters 16" in report["not_clustered"][0]["reason"]
    clustered, report = cluster_with_report(model, x_train, number_of_clusters=12, epochs=1, batch_size=16)
    assert report["clustered"] == ["tiny", "wide"] and report["not_clustered"] == []
    assert all(n <= 12 for n in unique_kernel_values(clustered).values())


@pytest.mark.parametrize("inference_type,dtype", [("int8", np.int8), ("uint8", np.uint8)])
def test_int8_and_uint8_io_quantization_round_trip(trained_model, windows_examples, inference_type, dtype):
    net = trained_model.load_keras()
    x = windows_examples.read_numpy("eval")["window"]
    runner = ModelRunner(convert(net, "int8", representative=x[:32], inference_type=inference_type))
    for spec in (runner.input, runner.output):
        assert spec.dtype == dtype
        assert spec.scale > 0 and np.iinfo(dtype).min <= spec.zero_point <= np.iinfo(dtype).max
    scale, zero_point = runner.input.scale, runner.input.zero_point
    info = np.iinfo(dtype)
    grid = np.linspace((info.min - zero_point) * scale, (info.max - zero_point) * scale, 57, dtype=np.float32)
    q = runner.quantize(grid)
    assert q.dtype == dtype
    np.testing.assert_allclose((q.astype(np.float32) - zero_point) * scale, grid, atol=scale / 2 + 1e-6)
    want = net.predict(x, verbose=0)
    assert np.abs(runner.run(x) - want).mean() <= 0.1 * np.abs(want).mean()


def test_an_op_without_int8_kernel_is_named_unless_fallback_is_allowed():
    inputs = keras.Input((8,))
    x = keras.layers.Dense(8, name="d1")(inputs)
    x = keras.layers.Lambda(lambda t: tf.math.cumsum(t, axis=-1), name="running_sum")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="d2")(x), name="with_cumsum")
    sample = RNG.normal(size=(16, 8)).astype(np.float32)
    with pytest.raises(FullIntegerError) as info:
        convert(model, "int8", representative=sample)
    message = str(info.value)
    assert "CUMSUM" in message and "running_sum" in message and "allow_float_fallback" in message
    assert "\n" not in message and info.value.exit_code == 4
    content = convert(model, "int8", representative=sample, allow_float_fallback=True)
    assert [op for op, _ in float_ops(content)] == ["CUMSUM"]
    assert ModelRunner(content).input.dtype == np.int8
    assert ModelRunner(content).run(sample).shape == (16, 2)


def test_pruning_builds_its_wrappers_under_a_distribution_strategy():
    x = RNG.normal(size=(32, 16, 2)).astype(np.float32)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = _conv1d_autoencoder()
    pruned, _ = prune_with_report(model, x, target_sparsity=0.5, epochs=1, batch_size=16, strategy=strategy)
    assert measured_sparsity(pruned) == pytest.approx(0.5, abs=0.03)


def test_variant_components_produce_every_default_variant(trained_model, windows_examples, tmp_path):
    def run(component, name, **kwargs):
        out = Model(tmp_path / name)
        key = {"prune_model": "pruned", "cluster_model": "clustered", "quantize_model": "qat_model"}[component.name]
        component.fn(windows=windows_examples, **{key: out}, batch_size=16, epochs=1, **kwargs)
        out.finalize()
        return Model.open(out.path)

    pruned = run(prune_model, "pruned", model=trained_model, target_sparsity=0.8)
    pqat = run(quantize_model, "pqat", model=pruned, scheme="pqat")
    qat = run(quantize_model, "qat", model=trained_model)
    clustered = run(cluster_model, "clustered", model=trained_model, number_of_clusters=8)
    sparsity = pruned.read_json("pruning.json")["measured_sparsity"]
    assert sparsity == pytest.approx(0.8, abs=0.02)
    assert pqat.read_json("quantization.json")["kernel_sparsity"] >= sparsity - 1e-9
    assert max(clustered.read_json("clustering.json")["unique_values"].values()) <= 8
    tflite = TFLiteModels(tmp_path / "tflite")
    convert_tflite.fn(examples=windows_examples, model=trained_model, qat_model=qat, pruned_model=pruned,
                      pqat_model=pqat, clustered_model=clustered, tflite=tflite, representative_samples=16,
                      inference_type="uint8", pruned_uniform_model=pruned)  # the uniform baseline's input
    index = tflite.read_json("variants.json")
    assert sorted(index) == sorted(DEFAULT_VARIANTS)
    for name, entry in index.items():
        assert {"size_bytes", "gzip_bytes", "params", "sparsity", "source", "sha256"} <= set(entry)
        expected = "uint8" if entry["mode"] == "int8" else "float32"
        assert entry["input_dtype"] == entry["output_dtype"] == expected, name
    assert index["pqat"]["sparsity"] >= sparsity - 1e-9 and index["pruned_int8"]["sparsity"] == sparsity
    assert index["pqat"]["gzip_bytes"] < index["int8_qat"]["gzip_bytes"]
    with pytest.raises(ConfigError, match="need the pqat model input"):
        convert_tflite.fn(examples=windows_examples, model=trained_model, tflite=TFLiteModels(tmp_path / "t2"),
                          variants=["float32", "pqat"])


def test_variant_config_is_validated_in_one_line():
    config = load_config(None)
    active = active_variants(list(config.convert.variants), config.enabled())
    # the uniform-pruning baseline is produced only beside energy-aware pruning (prune.policy: energy)
    assert active == [v for v in DEFAULT_VARIANTS if v != "pruned_uniform_int8"]
    assert primary_variant("auto", active) == "pqat"
    energy = load_config(None, ["prune.policy=energy"])
    assert active_variants(list(energy.convert.variants), energy.enabled()) == DEFAULT_VARIANTS
    assert primary_variant("auto", active_variants(DEFAULT_VARIANTS, {"qat": True})) == "int8_qat"
    assert primary_variant("auto", active_variants(DEFAULT_VARIANTS, {})) == "int8_ptq"
    for override, expected in [("convert.primary=cqat", "convert.primary 'cqat' is not produced"),
                               ("convert.variantz=[float32]", "unknown config key 'convert.variantz'"),
                               ("convert.inference_type=int4", "convert.inference_type"),
                               ("cluster.number_of_clusters=1", "cluster.number_of_clusters")]:
        with pytest.raises(ConfigError, match=expected) as info:
            load_config(None, [override])
        assert "\n" not in str(info.value)


def _rows(**passing):
    return [{"variant": "keras"}, *({"variant": v, "exported": ok, "reason": None if ok else "agreement 0.84 < 0.98"}
                                    for v, ok in passing.items())]


def test_auto_primary_is_the_first_int8_variant_that_passes_the_gate():
    from edgepipe.tasks.variants import gated_primary

    assert gated_primary("auto", _rows(pqat=True, int8_qat=True)) == ("pqat", None)
    chosen, why = gated_primary("auto", _rows(float32=True, pqat=False, int8_qat=True, int8_ptq=True))
    assert chosen == "int8_qat" and "'pqat' (agreement 0.84 < 0.98) failed the export bounds" in why
    # nothing passes: the first choice, for the gate to refuse with its own reason
    assert gated_primary("auto", _rows(pqat=False, int8_ptq=False)) == ("pqat", None)
    # a named primary is never replaced
    assert gated_primary("pqat", _rows(pqat=False, int8_qat=True)) == ("pqat", None)
    with pytest.raises(ConfigError, match="no int8 variant"):
        gated_primary("auto", _rows(float32=True))
