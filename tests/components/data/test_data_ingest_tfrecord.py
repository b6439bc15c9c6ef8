"""ingest_tfrecord (components/data/sources/ingest_tfrecord.py): contract, splits, rejects."""
import json

import numpy as np
import pytest

from edgepipe.components.data import ingest_tfrecord
from edgepipe.components.data.beam.example_decode import iter_examples
from edgepipe.components.data.beam.example_encode import encode_batch


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
