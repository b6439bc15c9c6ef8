"""micro_check on a model with two inputs of different kinds (the cGAN generator's shape: int8 noise and an int32
class label that is not quantized): each input reaches its own tensor in TFLM and in LiteRT."""
import numpy as np
import pytest

from edgepipe.components.export.micro import micro_check

tf = pytest.importorskip("tensorflow")
pytest.importorskip("tflite_micro", reason="tflite-micro is not installed (pip install '.[micro]')")


@pytest.fixture(scope="module")
def conditional_model():
    from edgepipe.components.optimization.tflite import convert

    keras = tf.keras
    keras.utils.set_random_seed(0)  # some draws hit TFLM's FULLY_CONNECTED rounding 1 LSB off (docs/device.md)
    # names sort opposite to the Keras order, so an input fed by name order instead of index would swap them
    noise = keras.Input((8,), name="z_noise")
    label = keras.Input((1,), dtype="int32", name="a_label")
    emb = keras.layers.Flatten()(keras.layers.Embedding(4, 4)(label))
    x = keras.layers.Concatenate()([noise, emb])
    model = keras.Model([noise, label], keras.layers.Dense(6, activation="tanh")(x))
    rng = np.random.default_rng(0)
    rep = [[rng.normal(size=(1, 8)).astype(np.float32), rng.integers(0, 4, size=(1, 1)).astype(np.int32)]
           for _ in range(32)]
    return convert(model, "int8", representative=lambda: iter(rep))


def test_two_inputs_match_litert(conditional_model):
    from edgepipe.runtime.litert import ModelRunner

    specs = ModelRunner(conditional_model).inputs
    assert [s.dtype for s in specs] == [np.int8, np.int32] and not specs[1].quantized
    rng = np.random.default_rng(1)
    noise = rng.integers(-128, 128, size=(8, 8)).astype(np.int8)
    labels = (np.arange(8) % 4).reshape(8, 1).astype(np.int32)
    result = micro_check(conditional_model, [noise, labels])
    assert result["ok"] and result["reference_max_abs_diff_lsb"] == 0, result
    assert result["examples"] == 8 and result["arena_bytes"] > 0 and "error" not in result


def test_every_input_is_fed_from_the_verification_arrays_the_bundle_names(conditional_model):
    """A generator's verification.npz holds ``latent`` and ``label`` (the runtime's request), not tensor names:
    the bundle's ``generation.latent_input`` says which tensor the latents feed; ``label`` feeds a tensor of its
    name; ``seed`` and ``output`` feed nothing."""
    from edgepipe.components.export.micro import verification_inputs
    from edgepipe.runtime.litert import ModelRunner, quantize

    noise, label = ModelRunner(conditional_model).inputs
    rng = np.random.default_rng(2)
    latent = rng.normal(size=(16, 8)).astype(np.float32)
    labels = (np.arange(16) % 4).astype(np.int32)
    verification = {"latent": latent, "label": labels, "seed": np.array(0), "output": np.zeros((16, 6))}
    doc = {"generation": {"latent_input": noise.name, "label_input": label.name}}
    xs, fed = verification_inputs(conditional_model, verification, doc)
    assert fed == {noise.name: "latent", label.name: "label"}
    np.testing.assert_array_equal(xs[0], quantize(latent[:8], noise))
    assert xs[1].dtype == np.int32 and xs[1].tolist() == labels[:8].reshape(8, 1).tolist()
    result = micro_check(conditional_model, xs)
    assert result["ok"] and result["examples"] == 8 and result["outputs"] == 1, result
    with pytest.raises(ValueError, match=noise.name):  # nothing names the latent tensor: refused, never guessed
        verification_inputs(conditional_model, verification, {"generation": {"label_input": label.name}})


def test_every_output_is_compared():
    """A two-head model: both outputs are read from TFLM and compared with LiteRT's."""
    from edgepipe.components.optimization.tflite import convert

    keras = tf.keras
    keras.utils.set_random_seed(0)
    inp = keras.Input((8,), name="x")
    hidden = keras.layers.Dense(8, activation="relu")(inp)
    model = keras.Model(inp, [keras.layers.Dense(3, activation="softmax", name="cls")(hidden),
                              keras.layers.Dense(2, name="value")(hidden)])
    rep = np.random.default_rng(0).normal(size=(32, 8)).astype(np.float32)
    content = convert(model, "int8", representative=rep)
    x = np.random.default_rng(3).integers(-128, 128, size=(6, 8)).astype(np.int8)
    result = micro_check(content, [x])
    assert result["outputs"] == 2 and result["examples"] == 6 and result["ok"], result
    wrong = micro_check(content, [x, x])  # an array per input, no more
    assert wrong["ok"] is False and "1 input(s), got 2" in wrong["error"]


def test_an_anomaly_detector_is_fed_the_evaluated_windows_clipped(chain, evaluation):
    """QA 23 N6: the anomaly task writes no verification arrays; the micro check takes the first eval windows
    (what evaluate_anomaly scored every variant on), clipped to the input clip as evaluation fed them."""
    from edgepipe.components.export.micro import evaluated_windows, verification_inputs
    from edgepipe.runtime.litert import ModelRunner, quantize

    clip = evaluation.read_json("evaluation.json")["input_clip"]
    windows = chain["windows"].read_numpy("eval")["window"].reshape(-1, *chain["windows"].feature_spec["window"]
                                                                    ["shape"])[:8]
    fed = evaluated_windows(chain["windows"], clip)
    assert list(fed) == ["eval_windows"]
    np.testing.assert_array_equal(fed["eval_windows"], np.clip(windows, clip["min"], clip["max"]))
    content = chain["tflite"].variant_path("int8_qat").read_bytes()
    spec = ModelRunner(content).input
    xs, sources = verification_inputs(content, fed, {})
    assert sources == {spec.name: "eval_windows"}
    np.testing.assert_array_equal(xs[0], quantize(fed["eval_windows"], spec))
    assert evaluated_windows(None, clip) == {}
