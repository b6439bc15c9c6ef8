"""A conditional generator's ``label``: one integer means that class for every sample (``{"n": 2, "label": 3}``),
a list must hold one class per sample; a wrong one is refused naming both forms. The model is a stub with the
runner's interface: what is tested is the task's request handling, through ``parse_body`` as ``serve`` does."""
from __future__ import annotations

import numpy as np
import pytest

from edgepipe.runtime import InputError
from edgepipe.runtime.inputs import parse_body
from edgepipe.runtime.tasks import TASKS


class GeneratorStub:
    """Two inputs (latent, label) like a cGAN's TFLite model; records the arrays it was fed."""

    name = "stub.tflite"
    inputs = ("z", "label")

    def __init__(self):
        self.fed = None

    def run_named(self, arrays):
        self.fed = arrays
        return np.zeros((len(arrays["z"]), 2, 2, 1), np.float32)


@pytest.fixture
def task():
    doc = {"generation": {"latent_dim": 4, "latent_input": "z", "label_input": "label", "num_classes": 10}}
    return TASKS["generation"](doc, {}, GeneratorStub())


def test_one_label_is_used_for_every_sample(task):
    _, request = parse_body({"n": 2, "seed": 0, "label": 3}, task)
    result = task.predict(request)
    assert result.labels.tolist() == [3, 3]
    assert task.runner.fed["label"].tolist() == [[3], [3]]
    assert [r["label"] for r in result.records()] == [3, 3]


def test_a_list_gives_each_sample_its_label(task):
    _, request = parse_body({"n": 3, "seed": 0, "label": [1, 0, 9]}, task)
    assert task.predict(request).labels.tolist() == [1, 0, 9]


@pytest.mark.parametrize("label, got", [([3], "; got 1 labels"), ([1, 2, 3], "; got 3 labels"), (10, ""),
                                        (-1, ""), (2.5, ""), ([1, 10], "")])
def test_wrong_labels_are_refused_naming_both_forms(task, label, got):
    _, request = parse_body({"n": 2, "seed": 0, "label": label}, task)
    with pytest.raises(InputError) as err:
        task.predict(request)
    assert str(err.value) == ("label: give one integer in 0..9 (used for all 2 samples) or a list of 2, "
                              "one per sample" + got)
