"""The bulk Example encoder/decoder agrees with protobuf and TensorFlow, and the TFRecord framing with TF's."""
import numpy as np
import pytest

from edgepipe.components.data.beam.example_decode import _decode_each, _parse_batch, decode_columns, decode_example, \
    float_spans
from edgepipe.components.data.beam.example_encode import encode_batch, encode_example
from edgepipe.components.data.beam.tfrecord import frame, tfrecord_payloads


def test_bulk_encoding_parses_with_protobuf_and_round_trips():
    from tensorflow.core.example import example_pb2

    rng = np.random.default_rng(0)
    n = 300
    cols = {"w": rng.normal(size=(n, 4, 3)).astype(np.float32), "k": rng.integers(-3, 1 << 40, n),
            "m": rng.integers(0, 300, (n, 3)), "s": np.array([("x" * (i % 5)) + "é" for i in range(n)], object)}
    records = encode_batch(cols, framed=False)
    for i in (0, 1, 150, n - 1):
        f = example_pb2.Example.FromString(records[i]).features.feature
        np.testing.assert_array_equal(np.array(f["w"].float_list.value, np.float32), cols["w"][i].ravel())
        assert list(f["k"].int64_list.value) == [cols["k"][i]] and list(f["m"].int64_list.value) == list(cols["m"][i])
        assert f["s"].bytes_list.value[0].decode() == cols["s"][i]
        mine = decode_example(records[i])
        assert mine["s"] == cols["s"][i] and mine["k"][0] == cols["k"][i]
        lo, hi = float_spans(records[i])["w"]
        np.testing.assert_array_equal(np.frombuffer(records[i][lo:hi], "<f4"), cols["w"][i].ravel())
    framed = encode_batch(cols)
    assert sorted(bytes(p) for p in tfrecord_payloads(framed, check=True)) == sorted(records)
    single = example_pb2.Example.FromString(encode_example({"k": np.int64(5), "s": "a"})).features.feature
    assert list(single["k"].int64_list.value) == [5] and list(single["s"].bytes_list.value) == [b"a"]


def test_tensorflow_reads_the_framed_records(tmp_path):
    import tensorflow as tf

    blob = encode_batch({"v": np.arange(20, dtype=np.float32).reshape(10, 2), "i": np.arange(10)})
    (tmp_path / "r.tfrecord").write_bytes(blob)
    parsed = [tf.io.parse_single_example(r, {"v": tf.io.FixedLenFeature([2], tf.float32),
                                             "i": tf.io.FixedLenFeature([], tf.int64)})
              for r in tf.data.TFRecordDataset(str(tmp_path / "r.tfrecord"))]
    assert sorted(int(p["i"]) for p in parsed) == list(range(10))


def test_repeated_string_column_encodes_as_per_record_examples():
    """The one-value fast path (make_windows' series id) gives the bytes of encoding each record alone."""
    from tensorflow.core.example import example_pb2

    n = 257
    window = np.arange(n * 4, dtype=np.float32).reshape(n, 4)
    for series in (np.full(n, "machine-7é", dtype=object), np.full(n, b"m\x00", dtype=object),
                   np.full(n, "", dtype=object), np.array(["s"] * n), np.array([b"raw"] * n), ["x"] * n,
                   np.array(["a"] * (n - 1) + [np.str_("a")], dtype=object)):  # equal, not all plain str
        records = encode_batch({"window": window, "series": series}, framed=False)
        assert records == [encode_example({"window": window[i], "series": series[i]}) for i in range(n)]
        value = series[0] if isinstance(series[0], bytes) else str(series[0]).encode()
        assert example_pb2.Example.FromString(records[5]).features.feature["series"].bytes_list.value == [value]
    mixed = np.array([b"b"] * n, dtype=object)
    mixed[100] = bytearray(b"b")  # equal to the others, yet not bytes: encoded as str() of it, as before
    got = [example_pb2.Example.FromString(r).features.feature["series"].bytes_list.value[0]
           for r in encode_batch({"series": mixed}, framed=False)]
    assert got == [b"b"] * 100 + [b"bytearray(b'b')"] + [b"b"] * (n - 101)


def _table_records():
    columns = {"a": np.array([1.5, np.nan, -3], np.float32), "b": np.array([1, -2, 3]),
               "s": np.array(["x", "yy", "\u00e9"], dtype=object), "w": np.arange(12, dtype=np.float32).reshape(3, 2, 2)}
    spec = {"a": {"dtype": "float32", "shape": []}, "b": {"dtype": "int64", "shape": []},
            "s": {"dtype": "string", "shape": []}, "w": {"dtype": "float32", "shape": [2, 2]}}
    return tfrecord_payloads(encode_batch(columns), check=True), spec


def test_decode_columns_takes_tensorflows_batch_parser_with_the_same_result():
    records, spec = _table_records()
    fast, each = _parse_batch(records, spec), _decode_each(records, spec)
    assert fast is not None and fast["s"] == each["s"]
    for name in ("a", "b", "w"):
        np.testing.assert_array_equal(fast[name], each[name])
        assert (fast[name].dtype, fast[name].shape) == (each[name].dtype, each[name].shape)


@pytest.mark.parametrize("change", [{"c": {"dtype": "float32", "shape": []}},  # missing in every record
                                    {"b": {"dtype": "float32", "shape": []}},  # stored as int64
                                    {"w": {"dtype": "float32", "shape": [3]}},  # another length
                                    {"v": {"dtype": "float32", "shape": None}}])  # var-length
def test_records_tensorflow_refuses_fall_back_to_the_lenient_decoder(change):
    records, spec = _table_records()
    spec = {**spec, **change}
    assert _parse_batch(records, spec) is None
    got = decode_columns(records, spec)
    assert got.keys() == spec.keys()
    if "c" in change:
        assert np.isnan(got["c"]).all()


def test_framing_matches_the_encoders_and_checked_reads_catch_corruption():
    records, _ = _table_records()
    framed = frame([bytes(r) for r in records])
    assert [bytes(r) for r in tfrecord_payloads(framed, check=True)] == [bytes(r) for r in records]
    first = len(records[0]) + 16
    for at, what in ((first + 9, "corrupt TFRecord length"), (first + 14, "corrupt TFRecord data")):
        bad = bytearray(framed)
        bad[at] ^= 0xFF
        with pytest.raises(ValueError, match=what):
            tfrecord_payloads(bytes(bad), check=True)
