"""Row statistics against NumPy; schema + validation catch drifted, missing and retyped columns; transform is
fitted on train only (numeric scaling, vocabularies with an OOV bucket)."""
import json
from collections import Counter

import numpy as np
import pytest

from edgepipe.components.data import (compute_statistics, infer_schema, ingest_csv, transform_features,
                                      validate_examples)
from edgepipe.components.data.beam.example_decode import iter_examples
from edgepipe.pipeline.errors import ConfigError, DataError


def _table(path, n, rng, shift=0.0, drop=None, cat_type=False):
    cols = {"num": rng.normal(10 + shift, 2, n).round(4), "cnt": rng.integers(0, 50, n),
            "cat": rng.choice(["a", "b", "c", "d"], n, p=[0.5, 0.3, 0.15, 0.05])}
    if cat_type:
        cols["cat"] = rng.integers(0, 4, n)
    if drop:
        del cols[drop]
    names = list(cols)
    lines = [",".join(str(cols[c][i]) for c in names) for i in range(n)]
    lines[3] = lines[3].replace(str(cols["num"][3]), "", 1) if "num" in cols else lines[3]
    path.write_text(",".join(names) + "\n" + "\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def base(tmp_path_factory, run):
    tmp = tmp_path_factory.mktemp("schema")
    _table(tmp / "t.csv", 800, np.random.default_rng(0))
    _, ing = run(ingest_csv, tmp / "ing", source=str(tmp / "t.csv"))
    _, st = run(compute_statistics, tmp / "st", examples=ing["examples"])
    _, sc = run(infer_schema, tmp / "sc", statistics=st["statistics"])
    return tmp, ing["examples"], st["statistics"], sc["schema"]


def test_row_statistics_match_numpy(base):
    _, examples, statistics, _ = base
    stats = statistics.read_json("statistics.json")
    for split in examples.splits:
        rows = list(iter_examples(examples, split))
        got = stats["splits"][split]
        assert got["num_examples"] == len(rows)
        num = np.array([r["num"][0] for r in rows], np.float64)
        finite = num[np.isfinite(num)]
        f = got["features"]["num"]
        assert (f["count"], f["missing"]) == (len(finite), len(num) - len(finite))
        assert f["mean"] == pytest.approx(finite.mean(), rel=1e-9) and f["std"] == pytest.approx(finite.std(), rel=1e-9)
        assert f["quantiles"]["0.5"] == pytest.approx(np.median(finite))
        assert got["features"]["cnt"]["type"] == "int" and f["type"] == "float"
        cat = got["features"]["cat"]
        assert cat["type"] == "string" and cat["unique"] == len({r["cat"] for r in rows})
        assert [tuple(t) for t in cat["top"]] == sorted(Counter(r["cat"] for r in rows).items(),
                                                        key=lambda kv: (-kv[1], kv[0]))


def test_schema_from_train_and_clean_splits_validate(base, run):
    tmp, _, statistics, schema = base
    spec = schema.read_json("schema.json")
    assert spec["fit_split"] == "train" and set(spec["features"]) == {"num", "cnt", "cat"}
    assert spec["features"]["cat"]["domain"] == ["a", "b", "c", "d"]
    metrics, out = run(validate_examples, tmp / "v0", statistics=statistics, schema=schema,
                       fail_on=["missing_column", "type_change", "mean_drift"])
    report = out["report"].read_json("validation.json")
    assert report["checked"] == ["eval", "test"] and report["failed"] is False
    assert not [a for a in report["anomalies"] if a["kind"] in ("missing_column", "type_change", "mean_drift")]


@pytest.mark.parametrize("change,kind,feature", [("shift", "mean_drift", "num"), ("drop", "missing_column", "cnt"),
                                                 ("retype", "type_change", "cat")])
def test_validation_catches_drift_missing_and_retyped_columns(base, run, tmp_path, change, kind, feature):
    _, _, _, schema = base
    rng = np.random.default_rng(5)
    _table(tmp_path / "new.csv", 300, rng, shift=6.0 if change == "shift" else 0.0,
           drop="cnt" if change == "drop" else None, cat_type=change == "retype")
    _, ing = run(ingest_csv, tmp_path / "ing", source=str(tmp_path / "new.csv"), split={"new": 1.0})
    _, st = run(compute_statistics, tmp_path / "st", examples=ing["examples"])
    metrics, out = run(validate_examples, tmp_path / "v", statistics=st["statistics"], schema=schema)
    anomalies = out["report"].read_json("validation.json")["anomalies"]
    assert any(a["kind"] == kind and a["feature"] == feature and a["split"] == "new" for a in anomalies), anomalies
    assert metrics[kind] >= 1
    with pytest.raises(DataError, match=f"{kind}.*feature '{feature}'"):
        run(validate_examples, tmp_path / "v2", statistics=st["statistics"], schema=schema, fail_on=[kind])
    with pytest.raises(ConfigError, match="unknown anomaly kind"):
        run(validate_examples, tmp_path / "v3", statistics=st["statistics"], schema=schema, fail_on=["bogus"])


@pytest.mark.parametrize("numeric,categorical", [("zscore", "index"), ("robust", "onehot")])
def test_transform_fitted_on_train_only(base, run, tmp_path, numeric, categorical):
    _, examples, statistics, _ = base
    metrics, out = run(transform_features, tmp_path / "t", examples=examples, statistics=statistics,
                       numeric=numeric, categorical=categorical, vocab_max_size=3)
    params = out["params"].read_json("transform.json")
    train = list(iter_examples(examples, "train"))
    num = np.array([r["num"][0] for r in train], np.float64)
    num = num[np.isfinite(num)]
    rule = params["features"]["num"]
    if numeric == "zscore":
        assert (rule["center"], rule["scale"]) == pytest.approx((num.mean(), num.std()))
    else:
        q1, q2, q3 = np.quantile(num, [0.25, 0.5, 0.75])
        assert (rule["center"], rule["scale"]) == pytest.approx((q2, q3 - q1))
    assert rule["fill"] == pytest.approx(num.mean())  # impute: mean (the default), in raw units
    cat = params["features"]["cat"]
    assert cat["vocab"] == ["a", "b", "c"] and cat["oov_index"] == 3  # train's 3 most frequent; "d" -> OOV
    spec = out["transformed"].properties["feature_spec"]
    hot = ["cat=a", "cat=b", "cat=c", "cat#oov"]
    if categorical == "index":
        assert spec["cat"] == {"dtype": "int64", "shape": []}
    else:  # one scalar float column per slot, so a table model's input is their concatenation
        assert "cat" not in spec and all(spec[c] == {"dtype": "float32", "shape": []} for c in hot)
        assert [c for c in params["outputs"] if c.startswith("cat")] == hot
    for split in examples.splits:
        after = list(iter_examples(out["transformed"], split))  # same shards, same record order
        assert len(after) == metrics[f"examples_{split}"] == len(list(iter_examples(examples, split)))
        for raw, done in zip(iter_examples(examples, split), after):
            x = raw["num"][0]
            want = ((rule["fill"] if np.isnan(x) else x) - rule["center"]) / rule["scale"]  # imputed: train mean
            assert done["num"][0] == pytest.approx(want, abs=1e-5)
            index = {"a": 0, "b": 1, "c": 2}.get(raw["cat"], 3)
            got = int(done["cat"][0]) if categorical == "index" else int(np.argmax([done[c][0] for c in hot]))
            assert got == index


@pytest.mark.parametrize("impute", ["median", "constant", "none"])
def test_imputation_and_missing_indicator(base, run, tmp_path, impute):
    _, examples, statistics, _ = base
    _, out = run(transform_features, tmp_path / "t", examples=examples, statistics=statistics, numeric="none",
                 impute=impute, fill_value=-7.0, missing_indicator=True)
    params = out["params"].read_json("transform.json")
    num = np.array([r["num"][0] for r in iter_examples(examples, "train")], np.float64)
    want = {"median": np.median(num[np.isfinite(num)]), "constant": -7.0, "none": None}[impute]
    rule = params["features"]["num"]
    assert rule["fill"] == (pytest.approx(want) if want is not None else None)
    assert rule["indicator"] == "num__missing" and "indicator" not in params["features"]["cnt"]  # cnt: no gaps
    rows = [(raw, done) for split in examples.splits
            for raw, done in zip(iter_examples(examples, split), iter_examples(out["transformed"], split))]
    blanks = [(raw, done) for raw, done in rows if np.isnan(raw["num"][0])]
    assert blanks  # the fixture blanks one value of 'num'
    for raw, done in blanks:
        assert done["num__missing"][0] == 1.0
        assert (np.isnan(done["num"][0]) if want is None else done["num"][0] == pytest.approx(want))
    assert all(done["num__missing"][0] == 0.0 for raw, done in rows if not np.isnan(raw["num"][0]))


def test_runtime_applies_the_same_transform_to_raw_rows(base, run, tmp_path):
    """The bundle's transform in NumPy (runtime/skew.py) on raw cell text == the pipeline's transformed Examples."""
    from edgepipe.runtime.skew import TableTransform

    _, examples, statistics, schema = base
    _, out = run(transform_features, tmp_path / "t", examples=examples, statistics=statistics, schema=schema,
                 categorical="onehot", vocab_max_size=3, missing_indicator=True, clip=1.5)
    params = out["params"].read_json("transform.json")
    features = sorted(params["outputs"])  # any order: the runtime stacks in preprocessing.features order
    table = TableTransform({"kind": "table", "features": features, "transform": params, "schema": params["schema"]})
    for split in examples.splits:
        raw = list(iter_examples(examples, split))
        cells = {"num": ["" if np.isnan(r["num"][0]) else repr(float(r["num"][0])) for r in raw],
                 "cnt": [str(int(r["cnt"][0])) for r in raw], "cat": [r["cat"] for r in raw]}
        x, report = table.prepare(cells)
        done = list(iter_examples(out["transformed"], split))
        want = np.array([[d[f][0] for f in features] for d in done], np.float32)
        np.testing.assert_array_equal(x, want)
        assert report["rows"] == len(raw) and not [a for a in report["anomalies"] if a["kind"] == "type_change"]
