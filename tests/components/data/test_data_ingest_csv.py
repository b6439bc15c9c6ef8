"""ingest_csv on real tables (taxi: mixed types and missing values; penguins: class labels) and on bad input."""
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from edgepipe.components.data import ingest_csv
from edgepipe.components.data.beam.example_decode import iter_examples
from edgepipe.pipeline.errors import ConfigError, DataError

SHARED = Path(__file__).resolve().parents[3] / "../shared/datasets"
TAXI = SHARED / "taxi/data.csv"
PENGUINS = SHARED / "penguins/penguins_processed.csv"
needs_data = pytest.mark.skipif(not TAXI.exists() or not PENGUINS.exists(), reason="shared datasets not present")


def _all(examples):
    return [ex for split in examples.splits for ex in iter_examples(examples, split)]


@pytest.fixture(scope="module")
def taxi(tmp_path_factory, run):
    return run(ingest_csv, tmp_path_factory.mktemp("taxi"), source=str(TAXI), label_column="tips")


@needs_data
def test_taxi_types_missing_values_and_label(taxi):
    metrics, out = taxi
    ex = out["examples"]
    spec = ex.properties["feature_spec"]
    assert spec["fare"] == {"dtype": "float32", "shape": []} and spec["label"] == {"dtype": "float32", "shape": []}
    assert spec["company"] == {"dtype": "string", "shape": []} and spec["payment_type"]["dtype"] == "string"
    assert spec["trip_start_timestamp"] == {"dtype": "int64", "shape": []}  # no missing value: kept exact
    assert "tips" not in spec and ex.properties["label_column"] == "tips"
    assert metrics["rows_read"] == 10000 and metrics["rows_rejected"] == 0
    assert sum(ex.properties["counts"].values()) == 10000
    # missing numeric -> NaN kept and counted, per column, equal to the raw file's empty cells
    import csv
    with open(TAXI, newline="") as handle:
        raw = list(csv.DictReader(handle))
    empty = sum(1 for r in raw if r["dropoff_latitude"] == "")
    assert ex.properties["missing_counts"]["dropoff_latitude"] == empty > 0
    rows = _all(ex)
    assert sum(1 for r in rows if np.isnan(r["dropoff_latitude"][0])) == empty
    assert Counter(r["company"] for r in rows) == Counter(r["company"] for r in raw)
    fares = sorted(float(r["fare"][0]) for r in rows)
    np.testing.assert_allclose(fares, sorted(np.float32(float(r["fare"])) for r in raw))
    # TF parses what we wrote with the declared spec
    batch = next(iter(ex.dataset("train", batch_size=64)))
    assert batch["company"].dtype.name == "string" and batch["label"].shape == (64,)


@needs_data
def test_penguins_class_labels(tmp_path, run):
    metrics, out = run(ingest_csv, tmp_path / "p", source=str(PENGUINS), label_column="species")
    ex = out["examples"]
    assert ex.properties["feature_spec"]["label"] == {"dtype": "int64", "shape": []}
    assert ex.properties["num_classes"] == 3 and ex.properties["label_values"] == [0, 1, 2]
    data = {s: ex.read_numpy(s) for s in ex.splits}
    assert sum(len(d["label"]) for d in data.values()) == 334
    assert 0.7 < len(data["train"]["label"]) / 334 < 0.9  # fraction split, met in expectation
    assert set(np.concatenate([d["label"] for d in data.values()]).tolist()) == {0, 1, 2}


def _split_of(spec, row: list[str], name: str) -> str:
    """The documented split rule (row text + file name) for one row, to place a typo where the test needs it."""
    from edgepipe.components.data.splits import assign, hash_text, hash_values, mix64
    hashes = mix64(hash_values(np.array([",".join(row)], dtype=object)) ^ np.uint64(hash_text(name)))
    return spec.names[int(assign(spec, hashes)[0])]


@needs_data
def test_a_label_absent_from_train_rejects_its_eval_test_rows_by_line(tmp_path, run):
    """T8: a typo class (11) on three eval/test penguins rows once made a 12-class model; classes come from train."""
    import csv
    from edgepipe.components.data.splits import parse_split
    fractions = {"train": 0.7, "eval": 0.1, "test": 0.2}
    spec = parse_split(fractions, fractions)
    with open(PENGUINS, newline="") as handle:
        header, *body = list(csv.reader(handle))
    typo_lines = []
    for i, row in enumerate(body):
        changed = ["11", *row[1:]]
        if len(typo_lines) < 3 and _split_of(spec, changed, "typo.csv") != "train":
            body[i] = changed
            typo_lines.append(i + 2)
    source = tmp_path / "typo.csv"
    source.write_text("\n".join(",".join(r) for r in [header, *body]) + "\n")
    metrics, out = run(ingest_csv, tmp_path / "o", source=str(source), label_column="species", split=fractions)
    ex = out["examples"]
    assert ex.properties["num_classes"] == 3 and ex.properties["label_values"] == [0, 1, 2]
    records = [json.loads(x) for x in out["rejects"].file("rejects.jsonl").read_text().splitlines()]
    assert sorted((r["line"], r["reason"]) for r in records) == [
        (line, "label 11 does not occur in the train split") for line in typo_lines]
    assert metrics["rows_rejected"] == 3 and sum(ex.properties["counts"].values()) == len(body) - 3
    labels = np.concatenate([ex.read_numpy(s)["label"] for s in ex.splits])
    assert set(labels.tolist()) == {0, 1, 2}
    # every other row stays in the split the documented rule gives it
    expected = Counter(_split_of(spec, row, "typo.csv") for row in body)
    expected.subtract(Counter(_split_of(spec, body[line - 2], "typo.csv") for line in typo_lines))
    assert ex.properties["counts"] == dict(expected)


BAD = ("id,x,kind,y\n"
       "1,0.5,a,0\n"
       "2,abc,b,1\n"            # 3: not a number
       "3,1.5,c\n"              # 4: missing field
       "4,2.5,d,1,9\n"          # 5: too many fields
       "5,,e,0\n"               # 6: missing numeric -> NaN, kept
       "6,inf,f,1\n"            # 7: non-finite
       "7,3.5,g,\n"             # 8: missing label
       "\n"                     # 9: blank line, not a row
       "8,4.5,h,0\n")


def test_bad_rows_are_rejected_with_line_and_reason(tmp_path, run):
    source = tmp_path / "bad.csv"
    source.write_bytes(BAD.encode() + b"9,5.5,\xff\xfe,1\n")  # 11: invalid UTF-8
    metrics, out = run(ingest_csv, tmp_path / "o", source=str(source), label_column="y", max_reject_fraction=1.0)
    records = [json.loads(x) for x in out["rejects"].file("rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in records] == [
        (3, "not a number in column 'x': 'abc'"),
        (4, "missing field: expected 4 fields, got 3"),
        (5, "too many fields: expected 4 fields, got 5"),
        (7, "non-finite value in column 'x': 'inf'"),
        (8, "missing label in column 'y'"),
        (11, "invalid UTF-8 in column 'kind'")]
    assert {r["file"] for r in records} == {str(source)}
    assert metrics["rows_read"] == 9 and metrics["rows_rejected"] == 6
    kept = sorted(_all(out["examples"]), key=lambda r: int(r["id"][0]))
    assert [int(r["id"][0]) for r in kept] == [1, 5, 8]
    assert np.isnan(kept[1]["x"][0]) and kept[1]["kind"] == "e"
    with pytest.raises(DataError, match=r"6 of 9 rows rejected .*bad.csv:3: not a number"):
        run(ingest_csv, tmp_path / "o2", source=str(source), label_column="y")


@pytest.mark.parametrize("case", ["missing", "empty", "header_only", "no_match", "missing_column"])
def test_unusable_input_is_one_data_error(tmp_path, run, case):
    target = tmp_path / "in.csv"
    if case == "empty":
        target.write_text("")
    elif case == "header_only":
        target.write_text("a,b\n")
    elif case == "missing_column":
        target.write_text("a,b\n1,2\n")
    source = str(tmp_path / "none-*.csv") if case == "no_match" else str(target)
    with pytest.raises(DataError) as err:
        run(ingest_csv, tmp_path / "o", source=source, label_column="label" if case == "missing_column" else None)
    assert "\n" not in str(err.value) and (source in str(err.value) or "label" in str(err.value))


def _table(path, n, rng):
    users = rng.integers(0, 40, n)
    path.write_text("user,v\n" + "".join(f"u{u},{v:.4f}\n" for u, v in zip(users, rng.normal(size=n))))


def test_hash_split_keeps_each_key_in_one_split_and_is_stable(tmp_path, run):
    _table(tmp_path / "t.csv", 600, np.random.default_rng(0))
    split = {"method": "hash", "key": "user", "train": 0.5, "eval": 0.25, "test": 0.25}
    seen = []
    for attempt in ("a", "b"):
        _, out = run(ingest_csv, tmp_path / attempt, source=str(tmp_path / "t.csv"), split=split)
        owner = {}
        for s in out["examples"].splits:
            for ex in iter_examples(out["examples"], s):
                assert owner.setdefault(ex["user"], s) == s  # no key in two splits
        seen.append(owner)
    assert seen[0] == seen[1] and len(set(seen[0].values())) == 3
    with pytest.raises(ConfigError, match="hash key 'nope'"):
        run(ingest_csv, tmp_path / "c", source=str(tmp_path / "t.csv"), split={"method": "hash", "key": "nope",
                                                                              "train": 1.0})


def test_byte_ranges_give_the_same_rows_and_global_line_numbers(tmp_path, run):
    rng = np.random.default_rng(1)
    lines = [f"{i},{rng.normal():.5f}" for i in range(3000)]
    lines[2500] = "2500,oops"
    (tmp_path / "r.csv").write_text("i,v\n" + "\n".join(lines) + "\n")
    results = []
    for name, split_bytes in (("whole", 0), ("ranges", 4096)):
        metrics, out = run(ingest_csv, tmp_path / name, source=str(tmp_path / "r.csv"), split_bytes=split_bytes)
        rejects = out["rejects"].file("rejects.jsonl").read_text()
        by_split = {s: sorted(int(e["i"][0]) for e in iter_examples(out["examples"], s)) for s in out["examples"].splits}
        results.append((metrics["rows_read"], rejects, by_split))
    assert results[0] == results[1]
    assert json.loads(results[0][1])["line"] == 2502  # header + 2501 rows before it


@needs_data
def test_a_string_label_is_unusable_data_naming_file_and_column(tmp_path, run):
    """QA 23 N4: the file's cells make the label unusable, whatever the config: exit 3, not 2."""
    with pytest.raises(DataError, match=r"data.csv: label column 'payment_type' holds strings: write its classes as "
                                        r"integers 0..k-1") as err:
        run(ingest_csv, tmp_path / "o", source=str(TAXI), label_column="payment_type")
    assert err.value.exit_code == 3


def test_a_builtin_dataset_name_is_not_taken_for_a_missing_file(tmp_path, run):
    """QA 23 N2: an init project run without CONFIG passes data.source's default, builtin:sensors, to ingest_csv."""
    with pytest.raises(ConfigError, match=r"^data.source 'builtin:sensors' is a built-in dataset, which ingest_csv "
                                          r"cannot read: give a CSV path \(--set data.source=...\) or a CONFIG$"):
        run(ingest_csv, tmp_path / "o", source="builtin:sensors", label_column="fault")


@needs_data
def test_class_names_name_the_integer_classes_and_must_fit_them(tmp_path, run):
    """T13: a table's classes could not be named, so predict/serve said "0"/"1"/"2" for penguins."""
    names = ["Adelie", "Chinstrap", "Gentoo"]
    _, out = run(ingest_csv, tmp_path / "n", source=str(PENGUINS), label_column="species", class_names=names)
    assert out["examples"].properties["class_names"] == names and out["examples"].properties["num_classes"] == 3
    with pytest.raises(ConfigError, match=r"class_names: 2 names for 3 classes \(train split labels 0, 1, 2\)"):
        run(ingest_csv, tmp_path / "two", source=str(PENGUINS), label_column="species", class_names=names[:2])
    with pytest.raises(ConfigError, match="class_names: names repeat"):
        run(ingest_csv, tmp_path / "rep", source=str(PENGUINS), label_column="species", class_names=["a", "a", "b"])
    with pytest.raises(ConfigError, match="label column 'culmen_length_mm' is not integer classes"):
        run(ingest_csv, tmp_path / "f", source=str(PENGUINS), label_column="culmen_length_mm", class_names=names)


def test_data_class_names_reach_the_ingest_node(tmp_path):
    from edgepipe.pipeline.config import load_config
    from edgepipe.pipeline.templates import build_pipeline

    config = tmp_path / "config.yaml"
    config.write_text(f"pipeline: {{name: p, template: supervised, root: {tmp_path}/root}}\n"
                      f"data: {{source: {PENGUINS.resolve()}, label_column: species, class_names: [A, C, G]}}\n"
                      "model: {family: mlp, task: classification}\n")
    nodes = {node.name: node for node in build_pipeline(load_config(str(config))).nodes}
    assert nodes["ingest_csv"].params["class_names"] == ["A", "C", "G"]
