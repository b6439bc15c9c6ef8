"""A table bundle's transform applied to raw rows (blanks, text, unseen strings, absent columns) and the skew report
against the train schema; the ``{"rows": [...]}`` body; bundle validation of the transform."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from edgepipe.runtime.checker import Checker
from edgepipe.runtime.errors import BundleError, InputError
from edgepipe.runtime.inputs import parse_body
from edgepipe.runtime.skew import MIN_DRIFT_ROWS, TableTransform, check_transform

VOCAB = ["Cash", "Credit Card"]
FEATURES = ["fare", "fare__missing", "miles", "pay=Cash", "pay=Credit Card", "pay#oov"]


def preprocessing(fill=12.5, clip=5.0):
    fare = {"kind": "numeric", "center": 12.5, "scale": 10.0, "fill": fill, "indicator": "fare__missing"}
    return {"kind": "table", "features": list(FEATURES), "columns": ["fare", "miles", "pay"],
            "transform": {"numeric": "zscore", "categorical": "onehot", "impute": "mean", "clip": clip,
                          "outputs": list(reversed(FEATURES)),
                          "features": {"fare": fare,
                                       "miles": {"kind": "numeric", "center": 3.0, "scale": 2.0, "fill": 3.0},
                                       "pay": {"kind": "categorical", "encoding": "onehot", "vocab": list(VOCAB),
                                               "oov_index": 2}}},
            "schema": {"features": {
                "fare": {"type": "float", "min": 0.0, "max": 60.0, "mean": 12.5, "std": 10.0, "missing_fraction": 0.0},
                "miles": {"type": "float", "min": 0.0, "max": 20.0, "mean": 3.0, "std": 2.0, "missing_fraction": 0.1},
                "pay": {"type": "string", "domain": list(VOCAB), "missing_fraction": 0.0}}}}


def kinds(report):
    return {(a["feature"], a["kind"]) for a in report["anomalies"]}


def test_raw_rows_become_the_pipelines_input_columns_in_bundle_order():
    table = TableTransform(preprocessing())
    x, report = table.prepare({"fare": ["22.5", "", "1000"], "miles": ["1", "3.5", "NA"],
                               "pay": ["Credit Card", "Cash", "Prcard"]})
    assert x.dtype == np.float32 and x.shape == (3, len(FEATURES))
    col = {name: x[:, i] for i, name in enumerate(FEATURES)}
    np.testing.assert_allclose(col["fare"], [1.0, 0.0, 5.0])  # 22.5 scaled; blank -> train mean; 1000 clipped
    np.testing.assert_array_equal(col["fare__missing"], [0, 1, 0])
    np.testing.assert_allclose(col["miles"], [-1.0, 0.25, 0.0], rtol=1e-6)  # NA -> the fill (3.0) -> 0
    np.testing.assert_array_equal(np.stack([col["pay=Cash"], col["pay=Credit Card"], col["pay#oov"]], 1),
                                  [[0, 1, 0], [1, 0, 0], [0, 0, 1]])  # Prcard: unseen -> the OOV slot
    assert kinds(report) >= {("fare", "out_of_range"), ("fare", "missing_values"), ("pay", "new_category")}
    assert report["columns"]["pay"]["new_categories"] == ["Prcard"] and report["rows"] == 3
    assert report["counts"]["new_category"] == 1
    # miles: 1 missing of 3 is above train's 10% + 5 points
    assert ("miles", "missing_values") in kinds(report)


def test_missing_values_are_judged_only_against_a_known_train_share():
    """A bundle without the train schema (a pipeline of your own without infer_schema, e.g. examples/taxi_tips)
    does not know how many blanks training had: its own training rows must not be reported as skew."""
    rows = {"fare": ["", "", "3.0", "4.0"], "miles": ["1", "2", "3", "4"], "pay": ["", "", "Cash", "Cash"]}
    schemaless = preprocessing()
    del schemaless["schema"]
    _, report = TableTransform(schemaless).prepare(rows)
    assert not any(a["kind"] == "missing_values" for a in report["anomalies"])
    assert report["columns"]["fare"]["missing"] == 2 and report["columns"]["pay"]["missing"] == 2
    _, report = TableTransform(preprocessing()).prepare(rows)  # with the schema: train had 0% blanks in both
    assert {("fare", "missing_values"), ("pay", "missing_values")} <= kinds(report)


def test_float_columns_are_parsed_as_the_ingest_stores_them():
    x, _ = TableTransform(preprocessing(clip=None)).prepare({"fare": ["0.1"], "miles": ["3"], "pay": ["Cash"]})
    want = (np.float64(np.float32(0.1)) - 12.5) / 10.0  # float32 storage, float64 arithmetic, float32 result
    assert x[0, 0] == np.float32(want)


def test_absent_column_and_text_in_a_numeric_column_are_imputed_and_reported():
    x, report = TableTransform(preprocessing()).prepare({"fare": ["abc", "10"], "pay": ["Cash", "Cash"]})
    assert ("miles", "missing_column") in kinds(report) and ("fare", "type_change") in kinds(report)
    assert np.all(x[:, FEATURES.index("miles")] == 0.0)  # every value the fill, i.e. the train center
    assert x[0, FEATURES.index("fare__missing")] == 1.0  # text counts as missing


def test_missing_value_without_imputation_is_one_line_naming_row_and_column():
    table = TableTransform(preprocessing(fill=None))
    with pytest.raises(InputError, match=r"row 2: column 'fare': missing value.*no imputation"):
        table.prepare({"fare": ["1", ""], "miles": ["1", "2"], "pay": ["Cash", "Cash"]})


def test_mean_drift_needs_enough_rows_to_be_reported():
    table = TableTransform(preprocessing())
    few = {"fare": ["40"] * 3, "miles": ["3"] * 3, "pay": ["Cash"] * 3}
    _, report = table.prepare(few)
    assert report["columns"]["fare"]["drift"] == pytest.approx(2.75)
    assert ("fare", "mean_drift") not in kinds(report)
    many = {k: v * MIN_DRIFT_ROWS for k, v in few.items()}
    _, report = table.prepare(many)
    assert ("fare", "mean_drift") in kinds(report) and ("miles", "mean_drift") not in kinds(report)


class _Task:
    name, input_kinds = "regression", ("features", "image", "rows")


def test_rows_body_becomes_columns_and_bad_values_are_refused():
    kind, columns = parse_body({"rows": [{"fare": 10, "pay": "Cash"}, {"fare": None, "pay": "Prcard"}]}, _Task())
    assert kind == "rows" and columns == {"fare": [10, None], "pay": ["Cash", "Prcard"]}
    x, report = TableTransform(preprocessing()).prepare(columns)
    assert x.shape == (2, len(FEATURES)) and ("miles", "missing_column") in kinds(report)
    with pytest.raises(InputError, match=r"rows\[0\]\.fare: must be a number, a string or null"):
        parse_body({"rows": [{"fare": [1]}]}, _Task())


@pytest.mark.parametrize("change,key", [
    (lambda p: p["transform"]["features"]["fare"].update(scale=0.0), "fare.scale"),
    (lambda p: p["transform"]["features"]["pay"].update(oov_index=5), "pay.oov_index"),
    (lambda p: p.update(columns=["fare"]), "preprocessing.columns"),
    (lambda p: p["transform"]["outputs"].pop(), "preprocessing.transform.outputs"),
])
def test_bundle_validation_refuses_an_inconsistent_transform(change, key):
    check_transform(Checker("bundle.json"), preprocessing(), FEATURES)  # the consistent one passes
    pre = copy.deepcopy(preprocessing())
    change(pre)
    with pytest.raises(BundleError, match=key):
        check_transform(Checker("bundle.json"), pre, FEATURES)
