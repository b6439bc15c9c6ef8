"""A string column reaching training is refused before anything fits, naming the column (DataError, exit 3), instead
of TensorFlow's bare "Graph execution error:" (QA 23 F4, on the taxi sample's 'company' column)."""
from __future__ import annotations


import numpy as np
import pytest

from edgepipe.components.training.arrays import write_examples
from edgepipe.components.training.fit import data_spec
from edgepipe.components.training.train_model import train_model
from edgepipe.pipeline.artifacts import Examples
from edgepipe.pipeline.errors import DataError
from tests.components.data.conftest import run_component
from tests.components.training.conftest import taxi_head_examples

FEATURES = ["fare", "trip_miles", "trip_seconds", "company"]


@pytest.fixture(scope="module")
def taxi_examples(tmp_path_factory):
    return taxi_head_examples(tmp_path_factory.mktemp("taxi"), label_column="trip_start_day",
                              feature_columns=FEATURES)


def test_train_model_names_the_string_feature(taxi_examples, tmp_path):
    assert taxi_examples.feature_spec["company"]["dtype"] == "string"
    with pytest.raises(DataError, match=r"feature column 'company' holds strings and a model takes numbers: leave it "
                                        r"out of the feature columns, or encode it with transform_features") as err:
        run_component(train_model, tmp_path, examples=taxi_examples, family="mlp", hparams={"units": [4]},
                      feature_columns=FEATURES, epochs=1)
    assert err.value.exit_code == 3 and "\n" not in str(err.value)


def test_numeric_columns_of_the_same_data_still_train_spec(taxi_examples):
    spec = data_spec(taxi_examples, "classification", feature_columns=FEATURES[:3])
    assert spec.input_shape == (3,) and spec.num_classes == 8  # trip_start_day 1..7


def test_a_string_label_is_refused_naming_its_column(tmp_path):
    examples = write_examples(Examples(tmp_path / "ex"), {
        "train": {"a": np.ones(4, np.float32), "label": np.array(["x", "y", "x", "y"], dtype=object)}},
        label_column="kind")
    with pytest.raises(DataError, match=r"label column 'kind' holds strings: write its classes as integers 0..k-1"):
        data_spec(examples, "classification", feature_columns=["a"])
