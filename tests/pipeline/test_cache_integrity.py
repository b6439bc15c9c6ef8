"""A cache hit is reused only while its artifacts still hold what was registered.

A flipped byte in a cached ``model.tflite`` used to be shipped ("13/13 cached", a bundle the runtime refuses), and a
truncated cached TFRecord failed every later run until ``--no-cache``. The store records each artifact's content
fingerprint and a size+mtime signature; a damaged artifact makes its node re-execute, and the progress line says why.
"""
import json
import os
from pathlib import Path

import pytest

from edgepipe.pipeline.cache import artifact_damage, file_signature
from edgepipe.pipeline.dag import Pipeline
from edgepipe.pipeline.runner import LocalRunner
from tests.pipeline import fixture_components as fx


def chain():
    a = fx.source(value=1)
    b = fx.increment(examples=a.outputs["out"], step=1)
    c = fx.combine(left=a.outputs["out"], right=b.outputs["out"])
    return Pipeline("chain", [a, b, c])


class Events:
    def __init__(self):
        self.seen = []

    def __call__(self, event, node, info):
        self.seen.append((event, node.name, dict(info)))

    def reasons(self):
        return {name: info["reason"] for event, name, info in self.seen if event == "start" and info.get("reason")}


def executed(result):
    return sorted(name for name, node in result.nodes.items() if not node.cached)


def value_file(result, node) -> Path:
    return Path(result.nodes[node].outputs["out"].uri) / "value.json"


def test_a_byte_flipped_in_a_cached_artifact_reexecutes_the_node_and_says_why(tmp_path):
    first = LocalRunner(tmp_path).run(chain())
    target = value_file(first, "increment")
    original = target.read_text()
    target.write_text(original.replace('"value": 2', '"value": 7'))  # same size, new mtime: a silent corruption
    assert len(target.read_text()) == len(original)
    events = Events()
    second = LocalRunner(tmp_path, progress=events).run(chain())
    assert second.status == "complete", second.error
    assert executed(second) == ["increment"]
    assert events.reasons() == {"increment": "cached result of increment is corrupt (out: file value.json changed): "
                                             "re-executing"}
    assert second.artifact("combine", "model").read_json("total.json") == {"total": 3}
    assert second.artifact("increment", "out").read_json("value.json") == {"value": 2}
    third = LocalRunner(tmp_path).run(chain())
    assert executed(third) == []  # the re-executed result is the cache entry now


def test_a_truncated_cached_file_is_caught_by_its_size_without_hashing(tmp_path, monkeypatch):
    first = LocalRunner(tmp_path).run(chain())
    record = first.nodes["source"].outputs["out"]
    signature = file_signature(record.uri)
    target = value_file(first, "source")
    os.truncate(target, target.stat().st_size // 2)
    from edgepipe.pipeline.artifacts import Artifact

    with monkeypatch.context() as patch:
        patch.setattr(Artifact, "content_fingerprint", lambda self: pytest.fail("hashed a resized artifact"))
        assert artifact_damage(record.uri, record.fingerprint, signature)[0] == "file value.json changed size"
    events = Events()
    assert executed(LocalRunner(tmp_path, progress=events).run(chain())) == ["source"]
    assert events.reasons() == {"source": "cached result of source is corrupt (out: file value.json changed size): "
                                          "re-executing"}


def test_truncated_artifact_reruns_and_downstream_reads_the_repaired_one(tmp_path):
    first = LocalRunner(tmp_path).run(chain())
    target = value_file(first, "source")
    os.truncate(target, 5)
    second = LocalRunner(tmp_path).run(chain())
    assert second.status == "complete", second.error
    assert executed(second) == ["source"]  # same bytes again: consumers' keys unchanged, still cache hits
    assert second.artifact("combine", "model").read_json("total.json") == {"total": 3}


def test_a_touched_but_intact_artifact_stays_a_hit_and_its_signature_is_refreshed(tmp_path, monkeypatch):
    runner = LocalRunner(tmp_path)
    first = runner.run(chain())
    target = value_file(first, "increment")
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # e.g. copied without -p
    assert executed(runner.run(chain())) == []
    row = runner.store._query("SELECT s.signature FROM artifacts a JOIN artifact_signatures s ON s.artifact_id=a.id "
                              "WHERE a.uri=?", (str(target.parent),))[0]
    assert json.loads(row["signature"])["value.json"][1] == stat.st_mtime_ns + 5_000_000_000
    from edgepipe.pipeline.artifacts import Artifact

    monkeypatch.setattr(Artifact, "content_fingerprint", lambda self: pytest.fail("hashed an unchanged artifact"))
    assert executed(runner.run(chain())) == []  # the refreshed signature matches: no hashing


def test_added_or_deleted_files_are_damage(tmp_path):
    first = LocalRunner(tmp_path).run(chain())
    folder = Path(first.nodes["increment"].outputs["out"].uri)
    (folder / "stray.bin").write_bytes(b"x")
    assert executed(LocalRunner(tmp_path).run(chain())) == ["increment"]
    record = first.nodes["source"].outputs["out"]
    signature = file_signature(record.uri)
    (Path(record.uri) / "value.json").unlink()
    damage, _ = artifact_damage(record.uri, record.fingerprint, signature)
    assert damage == "file value.json missing"


def test_a_store_without_signatures_falls_back_to_the_content_hash(tmp_path):
    """Stores written before signatures existed: the reuse check hashes, then records the signature."""
    runner = LocalRunner(tmp_path)
    first = runner.run(chain())
    runner.store._conn.execute("DELETE FROM artifact_signatures")
    assert executed(runner.run(chain())) == []
    assert len(runner.store._query("SELECT * FROM artifact_signatures")) == 3  # recorded by the check
    runner.store._conn.execute("DELETE FROM artifact_signatures")
    target = value_file(first, "increment")
    target.write_text(target.read_text().replace('"value": 2', '"value": 7'))
    events = Events()
    assert executed(LocalRunner(tmp_path, progress=events).run(chain())) == ["increment"]
    assert "increment" in events.reasons()


def test_a_store_stays_usable_by_an_edgepipe_without_signatures(tmp_path):
    """Signatures live in their own table: the artifacts table keeps its columns, so an older edgepipe sharing the
    root still inserts its 7-column rows, and this one treats them as unsigned."""
    runner = LocalRunner(tmp_path)
    first = runner.run(chain())
    columns = [row["name"] for row in runner.store._query("PRAGMA table_info(artifacts)")]
    assert columns == ["id", "type", "uri", "fingerprint", "producer", "name", "created"]
    record = first.nodes["source"].outputs["out"]
    runner.store._conn.execute("INSERT INTO artifacts VALUES (?,?,?,?,?,?,?)",
                               ("legacy", record.type, record.uri, record.fingerprint, "x", "out", 0.0))
    assert executed(runner.run(chain())) == []
