"""bundle.json names the shipped model's metrics by its variant too (variants.json and evaluation.json say
"pqat", bundle.json only said "int8": ``metrics.per_model[primary_variant]`` was a KeyError); the "int8" key stays
for the runtime and the run summary. On the real default-pipeline run shared with the runtime tests."""
from __future__ import annotations

import json

import pytest

from tests.runtime.fixtures import default_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return default_run(tmp_path_factory)


def test_the_primarys_metrics_are_keyed_by_its_variant_name_too(run):
    doc = json.loads((run.bundle / "bundle.json").read_text())
    primary, metrics = doc["primary_variant"], doc["metrics"]
    assert primary != "int8" and doc["models"]["int8"]["variant"] == primary
    for section in ("per_model", "agreement_with_keras"):
        assert metrics[section][primary] == metrics[section]["int8"], section
