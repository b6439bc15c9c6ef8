"""A table bundle's raw inputs and skew report on real taxi rows (QA findings T2-T6, T11, T12, T14 of /tmp/h24).

The preprocessing below is the bundle.json of ``examples/taxi_tips`` (5 of its 12 columns, constants as shipped):
a pipeline of your own, so no train ``schema`` -- only the fitted transform. The model is a stub (the runtime's
transform, checks and parsing are what is tested); the rows are the shared taxi sample's first 40.
"""
from __future__ import annotations

import copy
import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from edgepipe.runtime import Bundle, InputError
from edgepipe.runtime.bodies import RowsOnly
from edgepipe.runtime.cli import main
from edgepipe.runtime.inputs import parse_body, read_input
from edgepipe.runtime.tasks import TASKS
from tests.runtime.fixtures import taxi_head
from tests.runtime.test_tasks import StubRunner, vector_doc

COLUMNS = ["company", "fare", "payment_type", "trip_miles", "trip_seconds"]
COMPANIES = ["Taxi Affiliation Services", "Dispatch Taxi Affiliation", "Blue Ribbon Taxi Association Inc.",
             "Choice Taxi Association", "Northwest Management LLC", "KOAM Taxi Association", "Top Cab Affiliation",
             "Chicago Medallion Leasing INC", "Chicago Elite Cab Corp. (Chicago Carriag",
             "Chicago Medallion Management", "4197 - 41842 Royal Star", "0118 - 42111 Godfrey S.Awir",
             "0694 - 59280 Chinesco Trans Inc", "1085 - 72312 N and W Cab Co", "2192 - 73487 Zeymane Corp",
             "3011 - 66308 JBL Cab Inc.", "3253 - 91138 Gaither Cab Co.", "5074 - 54002 Ahzmi Inc",
             "5129 - 98755 Mengisti Taxi", "Chicago Elite Cab Corp.", "2092 - 61288 Sbeih company",
             "2733 - 74600 Benny Jona", "2823 - 73307 Seung Lee", "3094 - 24059 G.L.B. Cab Co",
             "3201 - C&D Cab Co Inc", "3201 - CID Cab Co Inc", "3319 - CD Cab Co", "3897 - 57856 Ilie Malec",
             "4053 - 40193 Adwar H. Nikola", "4197 - Royal Star", "4615 - 83503 Tyrone Henderson",
             "4615 - Tyrone Henderson", "4623 - Jay Kim", "5006 - 39261 Salifu Bawa", "5006 - Salifu Bawa",
             "5129 - 87128", "5129 - Mengisti Taxi", "5724 - KYVI Cab Inc", "6057 - 24657 Richard Addo",
             "6488 - 83287 Zuha Taxi", "6743 - Luhak Corp"]
RULES = {
    "fare": {"center": 12.672987119831316, "fill": 12.672987119831316, "kind": "numeric",
             "scale": 11.12589932036214, "train_missing": 0},
    "trip_miles": {"center": 3.4831409887392786, "fill": 3.4831409887392786, "kind": "numeric",
                   "scale": 23.17856907918872, "train_missing": 0},
    "trip_seconds": {"center": 828.426731348277, "fill": 828.426731348277, "kind": "numeric",
                     "scale": 936.8564408171745, "train_missing": 1},
    "company": {"encoding": "index", "kind": "categorical", "oov_index": 41, "vocab": COMPANIES},
    "payment_type": {"encoding": "index", "kind": "categorical", "oov_index": 5,
                     "vocab": ["Cash", "Credit Card", "No Charge", "Unknown", "Dispute"]},
}
TRAIN_ROWS, COMPANY_TRAIN_MISSING = 5979, 2045  # taxi_tips' train split; company 34.2% blank in it


def taxi_pre(train_rows: bool = False, schema: dict | None = None) -> dict:
    """taxi_tips' preprocessing; ``train_rows``: as fit_transform writes it now (train missing share known)."""
    rules = copy.deepcopy(RULES)
    if train_rows:
        for name, rule in rules.items():
            rule["train_rows"] = TRAIN_ROWS
        rules["company"]["train_missing"] = COMPANY_TRAIN_MISSING
    pre = {"kind": "table", "features": COLUMNS, "columns": COLUMNS,
           "transform": {"numeric": "zscore", "categorical": "index", "impute": "mean", "clip": None,
                         "outputs": COLUMNS, "features": rules}}
    return {**pre, **({"schema": schema} if schema else {})}


def bundle(tmp_path: Path, pre: dict) -> Bundle:
    doc = vector_doc("classification", features=len(COLUMNS), outputs=2, preprocessing=pre,
                     labels=["small_tip", "big_tip"])
    task = TASKS["classification"](doc, doc["models"]["main"], StubRunner((len(COLUMNS),), np.ones((5, 2))))
    return Bundle(tmp_path, doc, "main", task)


@pytest.fixture
def taxi():
    return taxi_head()


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def predict_file(b: Bundle, path: Path):
    [(_, kind, values, _)] = read_input(path, b.impl)
    return b.predict(values, kind)


def found(skew: dict, feature: str, kind: str) -> dict | None:
    return next((a for a in skew["anomalies"] if (a["feature"], a["kind"]) == (feature, kind)), None)


def cli(args, b: Bundle, monkeypatch, capsys):
    monkeypatch.setattr(Bundle, "load", classmethod(lambda cls, *a, **k: b))
    code = main(["predict", "bundle", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


# ---- T2: no train schema, but the transform knows the train mean, std, missing share and vocabulary -----------
def test_without_a_schema_drift_and_missing_share_come_from_the_transform(taxi, tmp_path, monkeypatch, capsys):
    header, rows = taxi
    fare = header.index("fare")
    for row in rows:
        row[fare] = str(float(row[fare]) + 100)
    path = write_csv(tmp_path / "drift.csv", header, rows)
    skew = predict_file(bundle(tmp_path, taxi_pre()), path).skew
    drift = found(skew, "fare", "mean_drift")
    assert drift and re.search(r"mean 113 vs train 12\.7 \(8\.98 train std > 1\)", drift["detail"]), skew
    assert skew["not_checked"] == ["missing_values: no train missing share in the bundle",
                                   "out_of_range: no train schema in the bundle"]
    code, _, err = cli([path], bundle(tmp_path, taxi_pre()), monkeypatch, capsys)
    assert code == 0 and ("skew of drift vs training (40 rows): mean_drift 1 (not checked: missing_values: no "
                          "train missing share in the bundle; out_of_range: no train schema in the bundle)") in err
    # a bundle built now also knows the train missing share: 26 of these 40 companies are blank, train 34.2%
    skew = predict_file(bundle(tmp_path, taxi_pre(train_rows=True)), path).skew
    assert "26 of 40 value(s) missing (65.0%; train 34.2%)" in found(skew, "company", "missing_values")["detail"]
    assert skew["not_checked"] == ["out_of_range: no train schema in the bundle"]
    assert found(skew, "trip_seconds", "missing_values") is None  # no blanks here


def test_fit_transform_records_the_train_missing_share_of_every_column():
    from edgepipe.components.data.transform import fit_transform

    stats = {"features": {"fare": {"count": 90, "missing": 10, "mean": 12.0, "std": 3.0},
                          "company": {"count": 60, "missing": 40, "top": [["A", 50], ["B", 10]]}}}
    spec = {"fare": {"dtype": "float32", "shape": []}, "company": {"dtype": "string", "shape": []}}
    rules = fit_transform(stats, spec, "zscore", "index", 10)["features"]
    assert (rules["fare"]["train_missing"], rules["fare"]["train_rows"]) == (10, 100)
    assert (rules["company"]["train_missing"], rules["company"]["train_rows"]) == (40, 100)


# ---- T3 / T4 / T5: findings name rows, lines and a value; text is not missing; numbers readable --------------
SCHEMA = {"features": {"fare": {"type": "float", "min": 0.0, "max": 175.05, "mean": 12.7202, "std": 11.2674,
                                "missing_fraction": 0.0}}}


def test_findings_name_the_rows_and_lines_and_text_is_not_counted_missing(taxi, tmp_path):
    header, rows = taxi
    fare, company = header.index("fare"), header.index("company")
    rows[9][fare] = "twelve"
    rows[1][fare] = "1e30"
    rows[2][company] = rows[4][company] = "LEAKCO Cab"
    skew = predict_file(bundle(tmp_path, taxi_pre(train_rows=True, schema=SCHEMA)),
                        write_csv(tmp_path / "bad.csv", header, rows)).skew
    text = found(skew, "fare", "type_change")
    assert text["detail"].endswith("(row 10; e.g. 'twelve' at line 11)") and text["rows"] == [10]
    assert skew["columns"]["fare"]["missing"] == 0 and skew["columns"]["fare"]["text"] == 1
    assert found(skew, "fare", "missing_values") is None  # T4: the text is not also a missing value
    outside = found(skew, "fare", "out_of_range")
    assert outside["detail"].endswith("(row 2; e.g. 1e+30 at line 3)"), outside
    new = found(skew, "company", "new_category")
    assert new["detail"].endswith("(rows 3, 5; e.g. 'LEAKCO Cab' at line 4)") and new["rows"] == [3, 5]
    drift = found(skew, "fare", "mean_drift")["detail"]
    assert re.fullmatch(r"mean 2\.56e\+28 vs train 12\.7 \(2\.28e\+27 train std > 1\)", drift), drift  # T5
    # JSON rows have no file line: the row alone
    kind, columns = parse_body({"rows": [{"fare": "twelve"}, {"fare": 3.5}]}, bundle(tmp_path, taxi_pre()).impl)
    skew = bundle(tmp_path, taxi_pre()).predict(columns, kind).skew
    assert found(skew, "fare", "type_change")["detail"].endswith("(row 1; e.g. 'twelve')")
    assert skew["columns"]["fare"]["missing"] == 0


# ---- T6: .jsonl is JSON Lines -------------------------------------------------------------------------------------
def test_jsonl_is_one_row_or_one_body_per_line_and_a_bad_line_is_named(tmp_path):
    b = bundle(tmp_path, taxi_pre())
    rows = [{"fare": 12.5, "company": None}, {"fare": "twelve", "payment_type": "Cash"}, {"fare": 30}]
    (tmp_path / "rows.jsonl").write_text(json.dumps(rows[0]) + "\n\n" + "\n".join(map(json.dumps, rows[1:])) + "\n")
    result = predict_file(b, tmp_path / "rows.jsonl")
    assert len(result.records()) == 3
    assert found(result.skew, "fare", "type_change")["detail"].endswith("(row 2; e.g. 'twelve' at line 3)")
    (tmp_path / "bodies.jsonl").write_text("\n".join(json.dumps({"rows": rows[i:i + 2]}) for i in (0, 1)))
    parts = read_input(tmp_path / "bodies.jsonl", b.impl)
    assert [(name, kind) for name, kind, _, _ in parts] == [("bodies:1", "rows"), ("bodies:2", "rows")]
    (tmp_path / "bad.jsonl").write_text('{"fare": 1}\n{bad\n')
    with pytest.raises(InputError, match=rf"^{tmp_path / 'bad.jsonl'}:2: not valid JSON \(.* at column 2\)$"):
        read_input(tmp_path / "bad.jsonl", b.impl)
    (tmp_path / "two.json").write_text('{"rows": [{"fare": 1}]}\n{"rows": [{"fare": 2}]}\n')
    with pytest.raises(InputError, match="not valid JSON"):  # .json stays one document
        read_input(tmp_path / "two.json", b.impl)


# ---- T11: bundle.predict takes raw rows by default --------------------------------------------------------------
def test_predict_takes_raw_rows_in_every_form_without_kind(tmp_path):
    b = bundle(tmp_path, taxi_pre())
    forms = [{"fare": [12.5, 30.0], "company": [None, "Flash Cab"]},
             [{"fare": 12.5, "company": None}, {"fare": 30.0, "company": "Flash Cab"}],
             {"rows": [{"fare": 12.5}, {"fare": 30.0, "company": "Flash Cab"}]}]
    results = [b.predict(raw) for raw in forms]
    assert all(len(r.records()) == 2 and r.skew["rows"] == 2 for r in results)
    np.testing.assert_array_equal(results[0].probabilities, results[1].probabilities)
    assert len(b.predict({"fare": 12.5}).records()) == 1  # one row as {column: value}
    with pytest.raises(InputError, match=r"^rows\[1\]: not a row object") as info:
        b.predict([{"fare": 12.5}, "fare"], kind="rows")
    assert "none of the bundle's columns" not in str(info.value)


# ---- T12: a column named twice --------------------------------------------------------------------------------
def test_a_duplicated_csv_column_is_refused_naming_it(taxi, tmp_path, monkeypatch, capsys):
    header, rows = taxi
    path = write_csv(tmp_path / "dup.csv", [*header, "fare"], [[*row, "999"] for row in rows])
    with pytest.raises(InputError, match=r"dup\.csv:1: duplicate column name\(s\) in the header: 'fare'$"):
        read_input(path, bundle(tmp_path, taxi_pre()).impl)
    code, out, err = cli([path], bundle(tmp_path, taxi_pre()), monkeypatch, capsys)
    assert code == 3 and out == "" and err.count("\n") == 1 and "duplicate column name(s)" in err


# ---- T14: numbers are not raw rows --------------------------------------------------------------------------------
def test_model_input_is_refused_unless_asked_for_explicitly(tmp_path, monkeypatch, capsys):
    b = bundle(tmp_path, taxi_pre())
    x = np.zeros((1, len(COLUMNS)))
    for call in (lambda: b.predict(x), lambda: b.predict(x.tolist()), lambda: b.predict(x, kind="features"),
                 lambda: parse_body({"features": x.tolist()}, b.impl)):
        with pytest.raises(RowsOnly, match=r'^this table bundle applies its own transform.*\{"rows": ') as info:
            call()
        assert info.value.exit_code == 2
    assert b.predict(x, kind="transformed").probabilities.shape == (1, 2)  # the documented opt-in
    assert b.metadata()["input_kinds"] == ["rows"]
    (tmp_path / "f.json").write_text(json.dumps({"features": x.tolist()}))
    code, _, err = cli([tmp_path / "f.json"], b, monkeypatch, capsys)
    assert code == 2 and err.count("\n") == 1 and 'send them as {"rows"' in err
    plain = TASKS["regression"](vector_doc("regression"), {}, StubRunner((2,), np.ones((2, 3))))
    assert plain.metadata()["input_kinds"] == ["features"]  # no "image" for a model that takes none


def test_serve_refuses_features_for_a_table_and_lists_only_rows(tmp_path):
    pytest.importorskip("fastapi", reason="the 'serve' extra (fastapi, uvicorn) is not installed")
    import http.client
    from urllib.parse import urlparse

    from edgepipe.runtime.server import running

    def call(url, method, path, body=None):
        parsed = urlparse(url)
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body).encode(),
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    with running(bundle(tmp_path, taxi_pre())) as url:
        status, answer = call(url, "POST", "/predict", {"features": [[0.25, 0.66, 0.15, 0.29, 0.0]]})
        assert status == 400 and 'send them as {"rows"' in answer["error"], answer
        status, answer = call(url, "POST", "/predict", {"rows": [{"fare": 12.5, "company": "Flash Cab"}]})
        assert status == 200 and answer["skew"]["rows"] == 1
        assert call(url, "GET", "/metadata")[1]["input_kinds"] == ["rows"]


def test_bundle_validation_refuses_a_bad_train_count():
    from edgepipe.runtime.checker import Checker
    from edgepipe.runtime.errors import BundleError
    from edgepipe.runtime.skew import check_transform

    pre = taxi_pre(train_rows=True)
    check_transform(Checker("bundle.json"), pre, COLUMNS)
    pre["transform"]["features"]["fare"]["train_rows"] = -1
    with pytest.raises(BundleError, match=r"'preprocessing\.transform\.features\.fare\.train_rows' must be >= 0"):
        check_transform(Checker("bundle.json"), pre, COLUMNS)
