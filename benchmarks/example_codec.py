"""Does the hand-written Example codec and TFRecord framing earn its keep? Each piece against TF's and Beam's own,
on the same data, in one run.

Data (seeded): 20,000 windows (``window`` float32 [64, 1], ``label`` int64, ``series`` bytes: what make_windows
writes) and 20,000 table rows of 10 mixed features (6 float32, 2 int64, 2 strings: what ingest_csv writes).

Pieces, each in examples/s (best of ``--repeat``):

* encode: ``example_encode.encode_batch(columns, framed=False)`` vs ``tf.train.Example(...).SerializeToString()``
  per row, and TF's faster path (one proto reused, values assigned in place, serialized per row);
* decode: the hand-written ``example_decode._decode_each`` (records -> stacked columns, what statistics/transform
  used; ``decode_columns`` now takes TF's batch path where it applies) vs
  ``tf.io.parse_example`` on the whole batch; ``example_decode.decode_example`` per record vs
  ``tf.train.Example.FromString`` + NumPy arrays per record;
* framing: ``tfrecord.frame`` written to a file vs ``tf.io.TFRecordWriter`` vs Beam's
  ``_TFRecordUtil.write_record``, uncompressed (the framing itself) and GZIP level 1 (one stream, what
  ``files.write_shard`` does; there the compressor takes ~95% of the time, so it compares zlib builds); reading
  back (CRCs checked on every side; unchecked, what the components' own shards use, printed beside):
  ``tfrecord.read_records`` vs ``tf.data.TFRecordDataset`` (GZIP) vs Beam's ``_TFRecordUtil.read_record``;
* encode and write a shard (the workers' real write path): ``encode_batch`` (framed) + one GZIP stream vs TF's
  fastest encode + ``tf.io.TFRecordWriter`` (GZIP);
* import: seconds for a fresh interpreter to import the data components (Beam, NumPy, the codec: what a worker
  imports to unpickle its DoFns), with and without TensorFlow (what a TF codec would add to each worker process).

A piece's verdict is "hand-written" where it is faster than the best library path, else "library";
``per_row_break_even_records`` is how many records one worker must decode one at a time before TF's per-row parser
repays the import it adds. Prints ONE JSON line. Usage: ``python benchmarks/example_codec.py [--n 20000] [--repeat 3]``.
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from edgepipe.components.data.beam.example_decode import _decode_each, decode_example  # noqa: E402
from edgepipe.components.data.beam.example_encode import encode_batch  # noqa: E402
from edgepipe.components.data.beam.files import GZIP_LEVEL  # noqa: E402
from edgepipe.components.data.beam.tfrecord import frame, inflate, tfrecord_payloads  # noqa: E402


def windows(n: int, rng) -> tuple[dict, dict]:
    columns = {"window": rng.normal(size=(n, 64, 1)).astype(np.float32),
               "label": rng.integers(0, 2, n).astype(np.int64),
               "series": np.array([f"machine-{i % 7}.csv".encode() for i in range(n)], dtype=object)}
    spec = {"window": {"dtype": "float32", "shape": [64, 1]}, "label": {"dtype": "int64", "shape": []},
            "series": {"dtype": "string", "shape": []}}
    return columns, spec


def table(n: int, rng) -> tuple[dict, dict]:
    columns, spec = {}, {}
    for i in range(6):
        columns[f"f{i}"] = (rng.normal(size=n) * 10 ** i).astype(np.float32)
        spec[f"f{i}"] = {"dtype": "float32", "shape": []}
    for i in range(2):
        columns[f"i{i}"] = rng.integers(0, 10 ** (3 * i + 2), n).astype(np.int64)
        spec[f"i{i}"] = {"dtype": "int64", "shape": []}
    for i in range(2):
        columns[f"s{i}"] = np.array([("abcdefgh"[: 1 + (j * (i + 3)) % 8]).encode() for j in range(n)], dtype=object)
        spec[f"s{i}"] = {"dtype": "string", "shape": []}
    return columns, spec


def best(fn, repeat: int) -> tuple[float, object]:
    out, times = None, []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def tf_encode_new(tf, columns: dict) -> list[bytes]:
    """A tf.train.Example built per row (the usual way)."""
    names = sorted(columns)
    rows = {k: (v.reshape(len(v), -1) if v.dtype.kind in "fi" else v) for k, v in columns.items()}
    out = []
    for r in range(len(rows[names[0]])):
        feature = {}
        for k in names:
            v = rows[k][r]
            if rows[k].dtype.kind == "f":
                feature[k] = tf.train.Feature(float_list=tf.train.FloatList(value=v))
            elif rows[k].dtype.kind == "i":
                feature[k] = tf.train.Feature(int64_list=tf.train.Int64List(value=v))
            else:
                feature[k] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))
        out.append(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return out


def tf_encode_reuse(tf, columns: dict) -> list[bytes]:
    """TF's faster path: one Example proto, each row's values assigned in place, then serialized."""
    names = sorted(columns)
    rows = {k: (v.reshape(len(v), -1) if v.dtype.kind in "fi" else v) for k, v in columns.items()}
    example = tf.train.Example()
    lists = {}
    for k in names:
        feature = example.features.feature[k]
        kind = rows[k].dtype.kind
        typed = feature.float_list if kind == "f" else feature.int64_list if kind == "i" else feature.bytes_list
        lists[k] = typed.value
    out = []
    for r in range(len(rows[names[0]])):
        for k in names:
            v = rows[k][r]
            lists[k][:] = v.tolist() if isinstance(v, np.ndarray) else [v]
        out.append(example.SerializeToString())
    return out


def tf_feature_spec(tf, spec: dict) -> dict:
    dtypes = {"float32": tf.float32, "int64": tf.int64, "string": tf.string}
    return {k: tf.io.FixedLenFeature(d["shape"], dtypes[d["dtype"]]) for k, d in spec.items()}


def tf_decode_rows(tf, records: list[bytes]) -> list[dict]:
    out = []
    for record in records:
        example = tf.train.Example.FromString(record)
        row = {}
        for k, f in example.features.feature.items():
            kind = f.WhichOneof("kind")
            if kind == "float_list":
                row[k] = np.asarray(f.float_list.value, np.float32)
            elif kind == "int64_list":
                row[k] = np.asarray(f.int64_list.value, np.int64)
            else:
                row[k] = [v.decode() for v in f.bytes_list.value]
        out.append(row)
    return out


def write_hand(path: str, records: list[bytes], gzip_level: int | None = GZIP_LEVEL) -> None:
    if gzip_level is None:
        with open(path, "wb") as handle:
            handle.write(frame(records))
        return
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    with open(path, "wb") as handle:
        handle.write(compressor.compress(frame(records)))
        handle.write(compressor.flush())


def shard_hand(path: str, columns: dict) -> None:
    """What a data worker does: encode the batch framed (encode_batch), one GZIP stream to the file."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    with open(path, "wb") as handle:
        handle.write(compressor.compress(encode_batch(columns)))
        handle.write(compressor.flush())


def shard_tf(tf, path: str, columns: dict) -> None:
    """TF's fastest way found: Examples from one reused proto, written by TFRecordWriter (GZIP)."""
    write_tf(tf, path, tf_encode_reuse(tf, columns))


def write_tf(tf, path: str, records: list[bytes], gzip: bool = True) -> None:
    options = tf.io.TFRecordOptions(compression_type="GZIP", compression_level=GZIP_LEVEL) if gzip else None
    with tf.io.TFRecordWriter(path, options) as writer:
        for record in records:
            writer.write(record)


def write_beam(path: str, records: list[bytes], compress: bool = True) -> None:
    from apache_beam.io.tfrecordio import _TFRecordUtil

    with (gzip.open(path, "wb", compresslevel=GZIP_LEVEL) if compress else open(path, "wb")) as handle:
        for record in records:
            _TFRecordUtil.write_record(handle, record)


def read_hand(path: str, check: bool = True) -> list:
    with open(path, "rb") as handle:
        return tfrecord_payloads(inflate(handle.read(), "GZIP"), check=check)


def read_tf(tf, path: str) -> list:
    return [t.numpy() for t in tf.data.TFRecordDataset(path, compression_type="GZIP")]


def read_beam(path: str) -> list:
    from apache_beam.io.tfrecordio import _TFRecordUtil

    out = []
    with gzip.open(path, "rb") as handle:
        buffered = io.BufferedReader(handle)
        while (record := _TFRecordUtil.read_record(buffered)) is not None:
            out.append(record)
    return out


def import_seconds(module: str, repeat: int) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return min(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                    check=True).stdout.strip().splitlines()[-1]) for _ in range(repeat))


def verdict(hand: float, library: float) -> str:
    return "hand-written" if hand > library else "library"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n, repeat = args.n, args.repeat
    rng = np.random.default_rng(0)
    worker = "edgepipe.components.data"  # what a data worker imports to unpickle its DoFns (Beam, NumPy, the codec)
    imports = {"worker_s": import_seconds(worker, repeat),
               "worker_plus_tensorflow_s": import_seconds(f"{worker}, tensorflow", repeat)}
    import tensorflow as tf

    result: dict = {"n": n, "repeat": repeat, "tensorflow": tf.__version__, "import": imports}
    rate = lambda seconds: round(n / seconds)  # noqa: E731
    verdicts = {}
    for data_name, (columns, spec) in {"windows": windows(n, rng), "table": table(n, rng)}.items():
        r: dict = {}
        t_hand, hand = best(lambda: encode_batch(columns, framed=False), repeat)
        t_new, new = best(lambda: tf_encode_new(tf, columns), repeat)
        t_reuse, reused = best(lambda: tf_encode_reuse(tf, columns), repeat)
        parse = tf.train.Example.FromString
        assert all(parse(a) == parse(b) == parse(c) for a, b, c in zip(hand, new, reused)), \
            "the encoders disagree"
        r["encode"] = {"hand_encode_batch": rate(t_hand), "tf_example_per_row": rate(t_new),
                       "tf_example_reused_proto": rate(t_reuse)}
        verdicts[f"encode_{data_name}"] = verdict(rate(t_hand), max(rate(t_new), rate(t_reuse)))

        records = [bytes(x) for x in hand]
        t_cols, cols = best(lambda: _decode_each(records, spec), repeat)
        tf_spec = tf_feature_spec(tf, spec)
        t_parse, parsed = best(lambda: {k: v.numpy() for k, v in tf.io.parse_example(tf.constant(records),
                                                                                    tf_spec).items()}, repeat)
        for k, d in spec.items():
            if d["dtype"] != "string":
                np.testing.assert_array_equal(cols[k], parsed[k])
        t_rows, _ = best(lambda: [decode_example(x) for x in records], repeat)
        t_from, _ = best(lambda: tf_decode_rows(tf, records), repeat)
        r["decode"] = {"hand_decode_columns": rate(t_cols), "tf_io_parse_example_batch": rate(t_parse),
                       "hand_decode_example_per_row": rate(t_rows), "tf_example_fromstring_per_row": rate(t_from)}
        verdicts[f"decode_batch_{data_name}"] = verdict(rate(t_cols), rate(t_parse))
        verdicts[f"decode_per_row_{data_name}"] = verdict(rate(t_rows), rate(t_from))
        # Records a worker must decode one by one before TF's faster per-row parser repays TF's import.
        extra_import = imports["worker_plus_tensorflow_s"] - imports["worker_s"]
        saved = 1 / rate(t_rows) - 1 / rate(t_from)
        r["decode"]["per_row_break_even_records"] = round(extra_import / saved) if saved > 0 else None

        with tempfile.TemporaryDirectory() as tmp:
            paths = {k: os.path.join(tmp, f"{k}.gz") for k in ("hand", "tf", "beam", "shard_hand", "shard_tf")}
            t_sh, _ = best(lambda: shard_hand(paths["shard_hand"], columns), repeat)
            t_st, _ = best(lambda: shard_tf(tf, paths["shard_tf"], columns), repeat)
            assert sorted(map(bytes, read_hand(paths["shard_hand"]))) == sorted(records)  # framed: grouped by layout
            assert len(read_hand(paths["shard_tf"])) == n, len(read_hand(paths["shard_tf"]))
            t_fh, _ = best(lambda: write_hand(paths["hand"], records), repeat)
            t_ft, _ = best(lambda: write_tf(tf, paths["tf"], records), repeat)
            t_fb, _ = best(lambda: write_beam(paths["beam"], records), repeat)
            plain = os.path.join(tmp, "plain")
            t_ph, _ = best(lambda: write_hand(plain, records, None), repeat)
            t_pt, _ = best(lambda: write_tf(tf, plain, records, gzip=False), repeat)
            t_pb, _ = best(lambda: write_beam(plain, records, compress=False), repeat)
            t_rh, got_h = best(lambda: read_hand(paths["hand"]), repeat)
            t_rn, _ = best(lambda: read_hand(paths["hand"], check=False), repeat)
            t_rt, got_t = best(lambda: read_tf(tf, paths["hand"]), repeat)
            t_rb, got_b = best(lambda: read_beam(paths["hand"]), repeat)
            assert [bytes(x) for x in got_h] == got_t == got_b == records
            assert read_hand(paths["tf"]) == read_hand(paths["beam"]) == read_hand(paths["hand"])
            sizes = {k: os.path.getsize(p) for k, p in paths.items() if not k.startswith("shard")}
        r["frame_write_gzip"] = {"hand_frame_gzip": rate(t_fh), "tf_tfrecordwriter_gzip": rate(t_ft),
                                 "beam_tfrecordutil_gzip": rate(t_fb), "bytes": sizes}
        r["frame_read_gzip"] = {"hand_read_records": rate(t_rh), "tf_tfrecorddataset": rate(t_rt),
                                "beam_tfrecordutil": rate(t_rb), "hand_read_records_unchecked": rate(t_rn)}
        r["encode_and_write_shard"] = {"hand_encode_batch_framed_gzip": rate(t_sh),
                                       "tf_reused_proto_tfrecordwriter_gzip": rate(t_st)}
        verdicts[f"encode_and_write_{data_name}"] = verdict(rate(t_sh), rate(t_st))
        r["frame_write_uncompressed"] = {"hand_frame": rate(t_ph), "tf_tfrecordwriter": rate(t_pt),
                                         "beam_tfrecordutil": rate(t_pb)}
        verdicts[f"frame_write_{data_name}"] = verdict(rate(t_ph), max(rate(t_pt), rate(t_pb)))
        verdicts[f"frame_write_gzip_{data_name}"] = verdict(rate(t_fh), max(rate(t_ft), rate(t_fb)))
        verdicts[f"frame_read_{data_name}"] = verdict(rate(t_rh), max(rate(t_rt), rate(t_rb)))
        result[data_name] = r
    result["verdict"] = verdicts
    print(json.dumps(result))


if __name__ == "__main__":
    main()
