"""Shards, reports and inputs go through Beam's FileSystems, so a non-local filesystem works end to end.

``memfs://`` below is a tiny in-memory object store registered with Beam the way gs:// or s3:// are (a
``FileSystem`` subclass with a scheme; no folders, rename = copy + delete). The pipeline tests map the launcher's
artifact folder to it exactly as ``to_beam_uri`` maps a Vertex ``/gcs/bucket/...`` path to ``gs://bucket/...`` for
a non-local runner, and run the workers in-process (DirectRunner) so they share the store.
"""
from __future__ import annotations

import io
import re

import numpy as np
import pytest
from apache_beam.io.filesystem import FileMetadata, FileSystem
from apache_beam.io.filesystems import FileSystems

from edgepipe.components.data import compute_statistics, ingest_timeseries, make_windows, normalize
from edgepipe.components.data.beam.example_decode import decode_example
from edgepipe.components.data.beam.example_encode import encode_batch
from edgepipe.components.data.beam import files as beam_files
from edgepipe.components.data.beam.files import list_files, split_files, worker_uri, write_shard
from edgepipe.components.data.beam.tfrecord import read_records

STORE: dict[str, bytes] = {}


class _Writer(io.BytesIO):
    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def close(self):
        if not self.closed:
            STORE[self.path] = self.getvalue()
        super().close()


class MemFileSystem(FileSystem):
    """An object store in this process's memory, for ``memfs://bucket/key`` paths."""

    @classmethod
    def scheme(cls):
        return "memfs"

    def join(self, basepath, *paths):
        return "/".join([basepath.rstrip("/"), *(p.strip("/") for p in paths)])

    def split(self, path):
        head, _, tail = path.rpartition("/")
        return head, tail

    def mkdirs(self, path):
        pass

    def has_dirs(self):
        return False

    def _list(self, dir_or_prefix):
        for path in sorted(STORE):
            if path.startswith(dir_or_prefix):
                yield FileMetadata(path, len(STORE[path]))

    def create(self, path, mime_type="application/octet-stream", compression_type=None):
        return _Writer(path)

    def open(self, path, mime_type="application/octet-stream", compression_type=None):
        if path not in STORE:
            raise FileNotFoundError(path)
        return io.BytesIO(STORE[path])

    def copy(self, source_file_names, destination_file_names):
        for src, dst in zip(source_file_names, destination_file_names):
            STORE[dst] = STORE[src]

    def rename(self, source_file_names, destination_file_names):
        for src, dst in zip(source_file_names, destination_file_names):
            STORE[dst] = STORE.pop(src)

    def exists(self, path):
        return path in STORE

    def size(self, path):
        return len(STORE[path])

    def last_updated(self, path):
        return 0.0

    def checksum(self, path):
        return str(len(STORE[path]))

    def metadata(self, path):
        return FileMetadata(path, len(STORE[path]))

    def delete(self, paths):
        for path in paths:
            for key in [k for k in STORE if k == path or k.startswith(path.rstrip("/") + "/")]:
                del STORE[key]


@pytest.fixture
def memfs():
    STORE.clear()
    yield STORE
    STORE.clear()


def test_memfs_is_a_beam_filesystem(memfs):
    assert isinstance(FileSystems.get_filesystem("memfs://b/x"), MemFileSystem)


def test_shards_round_trip_through_a_non_local_filesystem(memfs):
    out = "memfs://bucket/run/examples"
    batch = {"x": np.arange(12, dtype=np.float32).reshape(4, 3), "label": np.arange(4)}
    write_shard(out, "train", "data-a.gz", encode_batch(batch))
    write_shard(out, "train", "data-a.gz", encode_batch(batch))  # a retried bundle overwrites
    write_shard(out, "eval", "data-b.gz", encode_batch(batch))
    assert sorted(memfs) == ["memfs://bucket/run/examples/Split-eval/data-b.gz",
                             "memfs://bucket/run/examples/Split-train/data-a.gz"]  # no temporary file left
    files = list_files("memfs://bucket/run/examples/Split-train/data*")
    assert files == ["memfs://bucket/run/examples/Split-train/data-a.gz"]
    got = [decode_example(r) for r in read_records(files[0])]
    assert [g["label"][0] for g in got] == [0, 1, 2, 3]
    np.testing.assert_array_equal(got[2]["x"], [6, 7, 8])
    assert memfs[files[0]][:2] == b"\x1f\x8b"  # GZIP, as tf.data reads it


def test_worker_uri_maps_fuse_paths_only_for_non_local_runners():
    dataflow = ["--runner=DataflowRunner"]
    assert worker_uri("/gcs/bucket/run/x", dataflow) == "gs://bucket/run/x"
    assert worker_uri("/gcs/bucket/run/x", ["--runner=DaskRunner"]) == "gs://bucket/run/x"
    assert worker_uri("/tmp/run/x", dataflow) == "/tmp/run/x"
    assert worker_uri("/gcs/bucket/run/x", None) == "/gcs/bucket/run/x"  # DirectRunner reads the FUSE mount
    assert worker_uri("/gcs/bucket/run/x", ["--direct_running_mode=multi_processing"]) == "/gcs/bucket/run/x"


def _series_csv(n: int = 400) -> bytes:
    stamps = np.datetime64("2024-01-01T00:00") + np.arange(n) * np.timedelta64(1, "m")
    rows = "".join(f"{t},{np.sin(i / 9):.4f},{i % 5}\n" for i, t in enumerate(stamps))
    rows = rows.replace("\n", "\nnot-a-time,1,2\n", 1)  # one reject, line 3
    return ("timestamp,u,v\n" + rows).encode()


def _pipeline(root, run, source, beam_args):
    _, ing = run(ingest_timeseries, root / "ingest", source=source, chunk_size=32, split_bytes=2000,
                 beam_args=beam_args)
    _, st = run(compute_statistics, root / "stats", examples=ing["examples"], beam_args=beam_args)
    _, nm = run(normalize, root / "norm", examples=ing["examples"], statistics=st["statistics"],
                beam_args=beam_args)
    metrics, win = run(make_windows, root / "win", examples=nm["transformed"], size=8, stride=3,
                       chunk_steps=50, beam_args=beam_args)
    return metrics, ing, win


def test_pipeline_reads_and_writes_a_non_local_filesystem(tmp_path, run, memfs, monkeypatch):
    """Inputs on memfs://, artifacts mapped to memfs:// for the workers: every shard lands there (none on disk),
    and the result equals a local run's."""
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "s.csv").write_bytes(_series_csv())
    memfs["memfs://bucket/in/s.csv"] = _series_csv()
    local_metrics, local_ing, local_win = _pipeline(tmp_path / "local", run, str(tmp_path / "local" / "s.csv"), None)

    remote = tmp_path / "remote"
    monkeypatch.setattr(beam_files, "runs_locally", lambda beam_args: False)
    monkeypatch.setattr(beam_files, "to_beam_uri", lambda p: re.sub(f"^{re.escape(str(remote))}",
                                                                     "memfs://bucket/run", str(p)))
    metrics, ing, win = _pipeline(remote, run, "memfs://bucket/in/s.csv", None)

    assert metrics == local_metrics and metrics["windows_train"] > 0
    assert not list(remote.rglob("data-*")), "shards were written to the launcher's disk"
    shards = [k for k in memfs if "/Split-" in k]
    assert {k.split("/")[4] for k in shards} == {"ingest", "norm", "win"}
    assert not [k for k in memfs if "/.tmp-" in k or "/_report" in k]
    for split in ("train", "eval", "test"):
        got = [decode_example(r)["window"].tobytes() for f in split_files(win["windows"], split)
               for r in read_records(f)]
        want = [decode_example(r)["window"].tobytes() for f in local_win["windows"].split_files(split)
                for r in read_records(f)]
        assert sorted(got) == sorted(want) and got
    rejects = ing["rejects"].file("rejects.jsonl").read_text()
    assert '"file": "memfs://bucket/in/s.csv", "line": 3' in rejects
