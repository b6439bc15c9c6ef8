"""Conversion refuses NaN weights or NaN calibration data with the real cause (not a missing int8 kernel)."""
from __future__ import annotations

import numpy as np
import pytest

from edgepipe.components.optimization.nonfinite import check_finite
from edgepipe.pipeline.errors import DataError


def _model():
    import tf_keras as keras

    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(2)(inputs), name="table_mlp")


def _batches(x):
    return lambda: ([x[i:i + 1]] for i in range(len(x)))


def test_finite_model_and_data_pass():
    check_finite(_model(), _batches(np.zeros((4, 3), np.float32)), ["a", "b", "c"])


def test_nan_calibration_data_names_the_column():
    x = np.zeros((6, 3), np.float32)
    x[[1, 2, 4], 2] = np.nan
    x[0, 0] = np.inf
    with pytest.raises(DataError, match=r"4 non-finite value\(s\), most in input column 2 'c' \(3\).*not a missing "
                                        r"int8 kernel"):
        check_finite(_model(), _batches(x), ["a", "b", "c"])


def test_nan_weights_say_training_produced_them():
    net = _model()
    kernel, bias = net.layers[-1].get_weights()
    kernel[0, 0] = np.nan
    net.layers[-1].set_weights([kernel, bias])
    with pytest.raises(DataError, match=r"model 'table_mlp' has non-finite weights \(.*kernel.*\): training produced"):
        check_finite(net, None)
