"""A non-finite loss stops ``fit`` at the batch where it happens, with the cause looked up in the data: the column
with missing values (DataError) or, on finite data, divergence (ConfigError)."""
from __future__ import annotations


import numpy as np
import pytest

from edgepipe.components.data.beam.example_decode import iter_examples
from edgepipe.components.training.fit import fit
from edgepipe.components.training.nonfinite import describe_cause, non_finite_counts
from edgepipe.pipeline.errors import ConfigError, DataError
from tests.components.data.conftest import run_component
from tests.components.training.conftest import taxi_head_examples



@pytest.fixture(scope="module")
def taxi_examples(tmp_path_factory):
    return taxi_head_examples(tmp_path_factory.mktemp("taxi"), label_column="tips")


def _numeric(examples):
    return [n for n, d in examples.feature_spec.items() if d["dtype"] != "string" and n != "label"]


def test_the_cause_names_the_column_with_most_missing_values(taxi_examples):
    names = _numeric(taxi_examples)
    rows = list(iter_examples(taxi_examples, "train"))
    counted = {n: int(sum(1 for r in rows if not np.isfinite(np.asarray(r[n], np.float64)).all())) for n in names}
    assert non_finite_counts(taxi_examples, "train", names) == counted
    worst = max(counted, key=lambda n: (counted[n], n))
    assert counted[worst] > 0  # the taxi sample has blanks
    err = describe_cause(taxi_examples, names, "label")()
    assert isinstance(err, DataError)
    assert f"feature '{worst}' has {counted[worst]:,} missing or non-finite values" in str(err)
    assert "and no imputation" in str(err)


def test_finite_data_means_divergence(taxi_examples):
    finite = [n for n, c in non_finite_counts(taxi_examples, "train", _numeric(taxi_examples)).items() if c == 0]
    err = describe_cause(taxi_examples, finite, "label")()
    assert isinstance(err, ConfigError) and "diverged" in str(err)


def _model():
    import tf_keras as keras

    inputs = keras.Input((2,))
    net = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    net.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    return net


def test_fit_stops_at_the_first_non_finite_batch():
    import tensorflow as tf

    x = np.ones((40, 2), np.float32)
    x[25, 1] = np.nan  # batch 3 of 10 (batch size 10 -> rows 20..29)
    ds = tf.data.Dataset.from_tensor_slices((x, np.ones((40, 1), np.float32))).batch(10)
    seen = []

    def cause():
        seen.append(True)
        return DataError("feature 'b' has 1 missing or non-finite values in the train split and no imputation")

    with pytest.raises(DataError, match=r"loss is nan at epoch 1, batch 3: feature 'b' has 1 missing"):
        fit(_model(), ds, None, epochs=5, patience=0, lr_schedule="constant", non_finite=cause)
    assert seen == [True]  # looked up once, when it happened


def test_a_diverging_fit_without_a_cause_says_so():
    import tensorflow as tf
    import tf_keras as keras

    net = _model()
    net.compile(optimizer=keras.optimizers.SGD(1e30), loss="mse")
    x = np.full((64, 2), 100.0, np.float32)
    ds = tf.data.Dataset.from_tensor_slices((x, np.ones((64, 1), np.float32))).batch(8)
    with pytest.raises(ConfigError, match=r"loss is (nan|inf) at epoch 1, batch \d+: the optimisation diverged"):
        fit(net, ds, None, epochs=3, patience=0, lr_schedule="constant")


def test_a_table_with_blanks_trains_once_imputed(taxi_examples, tmp_path):
    """The same columns through transform_features (mean imputation) have no non-finite value left."""
    from edgepipe.components.data import compute_statistics, transform_features

    _, st = run_component(compute_statistics, tmp_path / "st", examples=taxi_examples)
    _, tr = run_component(transform_features, tmp_path / "tr", examples=taxi_examples,
                          statistics=st["statistics"], impute="mean")
    names = [n for n in tr["transformed"].feature_spec if n != "label"]
    assert not any(non_finite_counts(tr["transformed"], "train", names).values())
    _, none = run_component(transform_features, tmp_path / "none", examples=taxi_examples,
                            statistics=st["statistics"], impute="none")
    left = non_finite_counts(none["transformed"], "train", names)
    assert any(left.values()) and all(n in _numeric(taxi_examples) for n, c in left.items() if c)
    err = describe_cause(none["transformed"], names, "label")()
    assert isinstance(err, DataError) and "transform.impute is none" in str(err)
