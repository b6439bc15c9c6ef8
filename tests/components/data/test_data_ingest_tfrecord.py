"""ingest_tfrecord (components/data/sources/ingest_tfrecord.py): contract, splits, rejects."""
import json

import numpy as np
import pytest

from edgepipe.components.data import ingest_tfrecord
from edgepipe.components.data.beam.example_decode import iter_examples
from edgepipe.components.data.beam.example_encode import encode_batch
from edgepipe.pipeline.errors import DataError


def _all(examples):
    return [ex for split in examples.splits for ex in iter_examples(examples, split)]


def _write_tf_records(path, records, compression):
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path), options=tf.io.TFRecordOptions(compression_type=compression)) as writer:
        for record in records:
            writer.write(record)


@pytest.mark.parametrize("compression", ["GZIP", ""])
def test_tfrecord_infers_spec_keeps_records_and_rejects_nonconforming(tmp_path, run, compression):
    n = 50
    good = encode_batch({"f": np.arange(n * 2, dtype=np.float32).reshape(n, 2), "k": np.arange(n),
                         "s": np.array([f"r{i}" for i in range(n)], dtype=object)}, framed=False)
    odd = encode_batch({"f": np.zeros((1, 3), np.float32), "k": np.zeros(1, int), "s": np.array(["x"], object)},
                       framed=False)
    _write_tf_records(tmp_path / "a.tfrecord", good + odd + [b"\xff\x00garbage"], compression)
    metrics, out = run(ingest_tfrecord, tmp_path / "o", source=str(tmp_path / "*.tfrecord"),
                       split={"train": 0.7, "eval": 0.3}, max_reject_fraction=0.1)
    ex = out["examples"]
    assert ex.properties["feature_spec"] == {"f": {"dtype": "float32", "shape": [2]},
                                            "k": {"dtype": "int64", "shape": []},
                                            "s": {"dtype": "string", "shape": []}}
    rows = _all(ex)
    assert sorted(int(r["k"][0]) for r in rows) == list(range(n))
    records = [json.loads(x) for x in out["rejects"].file("rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in records] == [(51, "feature 'f' has 3 values, expected 2"),
                                                           (52, "not a tf.train.Example")]
    assert metrics["records_read"] == 52 and metrics["examples_train"] + metrics["examples_eval"] == n
    assert next(iter(ex.dataset("train", batch_size=8)))["f"].shape == (8, 2)
    assert out["rejects"].properties["unit"] == "records"  # QA 23 N7: counted as what was read, not "rows"
    with pytest.raises(DataError, match=r"^2 of 52 records rejected .*; first: \S+a\.tfrecord:51: feature 'f'"):
        run(ingest_tfrecord, tmp_path / "o2", source=str(tmp_path / "*.tfrecord"))


def test_label_column_is_renamed_label_and_other_features_keep_their_bytes(tmp_path, run):
    import tensorflow as tf

    def example(i):
        feature = {"size": tf.train.Feature(float_list=tf.train.FloatList(value=[i / 10, -i])),
                   "tags": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"a", f"t{i}".encode()])),
                   "species": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 3]))}
        return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()

    _write_tf_records(tmp_path / "p.tfrecord.gz", [example(i) for i in range(30)], "GZIP")
    _, out = run(ingest_tfrecord, tmp_path / "o", source=str(tmp_path / "p.tfrecord.gz"), label_column="species",
                 split={"train": 1.0})
    ex = out["examples"]
    assert ex.properties["feature_spec"] == {"size": {"dtype": "float32", "shape": [2]},
                                            "tags": {"dtype": "string", "shape": [2]},
                                            "label": {"dtype": "int64", "shape": []}}
    assert ex.properties["label_column"] == "species"
    records = [tf.train.Example.FromString(r.numpy()) for r in
               tf.data.TFRecordDataset([str(p) for p in sorted(ex.split_dir("train").glob("*"))],
                                       compression_type="GZIP")]
    assert len(records) == 30
    for record in records:
        f = record.features.feature
        assert set(f) == {"size", "tags", "label"}
        i = -int(f["size"].float_list.value[1])
        assert f["label"].int64_list.value == [i % 3] and list(f["tags"].bytes_list.value) == [b"a", f"t{i}".encode()]
    with pytest.raises(DataError, match="no feature 'kind' to use as the label"):
        run(ingest_tfrecord, tmp_path / "o2", source=str(tmp_path / "p.tfrecord.gz"), label_column="kind")
