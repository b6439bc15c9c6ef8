"""Copying a bundle to ``--output``: never over the user's files, never a mix of two concurrent copies.

Two runs writing the same ``--output`` used to share one ``bundle.partial``: one printed "bundle written" over a
bundle mixing both runs' files, the other died with a raw shutil.Error. Each copy now stages in its own folder and
swaps under an exclusive lock.
"""
import multiprocessing
import os
from pathlib import Path

import pytest

from edgepipe.pipeline.artifacts import Artifact, Bundle
from edgepipe.pipeline.errors import ConfigError


def make_bundle(folder: Path, tag: str, files: int = 40) -> Bundle:
    """A finished Bundle artifact whose every file says which bundle it belongs to."""
    bundle = Bundle(folder)
    bundle.write_json("bundle.json", {"schema_version": 1, "task": "anomaly_detection", "tag": tag})
    for i in range(files):
        bundle.file(f"model_{i:02d}.tflite").write_bytes((tag * 2048).encode())
    bundle.file(f"only_in_{tag}.txt").write_text(tag)
    bundle.finalize()
    return bundle


def contents(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _copy_repeatedly(source: str, destination: str, times: int, errors) -> None:
    try:
        for _ in range(times):
            Bundle.open(source).copy_to(destination)
    except BaseException as err:  # noqa: BLE001 - reported to the parent, which fails the test
        errors.put(f"{type(err).__name__}: {err}")


def test_two_processes_copying_to_one_destination_leave_exactly_one_bundle(tmp_path):
    a, b = make_bundle(tmp_path / "a", "A"), make_bundle(tmp_path / "b", "B")
    expected = [contents(a.path), contents(b.path)]
    for want in expected:
        want.pop("_artifact.json")
    destination = tmp_path / "out" / "bundle"
    context = multiprocessing.get_context("fork")
    errors = context.Queue()
    for round_ in range(8):
        workers = [context.Process(target=_copy_repeatedly, args=(str(src.path), str(destination), 4, errors))
                   for src in (a, b)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert [w.exitcode for w in workers] == [0, 0]
        assert errors.empty(), errors.get()
        assert contents(destination) in expected, f"round {round_}: a mix of both bundles"
    assert sorted(p.name for p in destination.parent.iterdir()) == ["bundle"]


def test_leftovers_of_a_copy_killed_between_its_renames_are_cleared(tmp_path, monkeypatch):
    a, b = make_bundle(tmp_path / "a", "A", files=2), make_bundle(tmp_path / "b", "B", files=2)
    destination = tmp_path / "out"
    a.copy_to(destination)
    real_rename = Path.rename
    calls = []

    def dies_on_second_rename(self, target):
        calls.append(self)
        if len(calls) == 2:  # the old bundle is aside, the new one not yet in place
            raise KeyboardInterrupt
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", dies_on_second_rename)
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C there: the earlier bundle is put back
        b.copy_to(destination)
    monkeypatch.undo()
    assert contents(destination)["only_in_A.txt"] == b"A" and "only_in_B.txt" not in contents(destination)
    # What a kill -9 at that point leaves behind (no handler runs): the old bundle aside, a staged copy, no output
    real_rename(destination, tmp_path / "aside")
    (tmp_path / ".out.old-x1y2").mkdir()
    real_rename(tmp_path / "aside", tmp_path / ".out.old-x1y2" / "out")
    (tmp_path / ".out.partial-z3" / "out").mkdir(parents=True)
    b.copy_to(destination)
    assert contents(destination)["only_in_B.txt"] == b"B"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "out"]


def test_a_bundle_never_replaces_foreign_files(tmp_path):
    bundle = make_bundle(tmp_path / "a", "A", files=1)
    user = tmp_path / "u"
    (user / "sub").mkdir(parents=True)
    (user / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"u: holds files that are not an edgepipe bundle \(notes.txt, sub/\)"):
        bundle.copy_to(user)
    assert (user / "notes.txt").read_text() == "mine" and (user / "sub").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "u"]


def test_a_bundle_replaces_an_earlier_bundle_or_an_empty_folder(tmp_path):
    a, b = make_bundle(tmp_path / "a", "A", files=1), make_bundle(tmp_path / "b", "B", files=1)
    (tmp_path / "empty").mkdir()
    assert contents(a.copy_to(tmp_path / "empty"))["only_in_A.txt"] == b"A"
    b.copy_to(tmp_path / "empty")
    assert "only_in_A.txt" not in contents(tmp_path / "empty")
    assert os.stat(tmp_path / "empty").st_mode & 0o777 == os.stat(b.path).st_mode & 0o777  # not mkdtemp's 0700


@pytest.mark.parametrize("setup, reason", [
    (lambda p: p.write_text("x"), "exists and is not a directory"),
    (lambda p: (p.mkdir(), (p / "bundle.json").write_text('{"name": "not ours"}')), "holds files that are not"),
    (lambda p: (p.mkdir(), (p / "bundle.json").write_text("{broken")), "holds files that are not"),
])
def test_replace_refusal(tmp_path, setup, reason):
    target = tmp_path / "t"
    setup(target)
    assert reason in Bundle.replace_refusal(target)


def test_plain_artifacts_copy_without_a_guard(tmp_path):
    source = Artifact(tmp_path / "src")
    source.write_json("x.json", {"a": 1})
    source.finalize()
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "old.txt").write_text("old")
    source.copy_to(tmp_path / "dst")
    assert sorted(contents(tmp_path / "dst")) == ["x.json"]


def test_a_destination_spelled_with_a_dot_is_named_by_its_folder(tmp_path, monkeypatch):
    bundle = make_bundle(tmp_path / "a", "A", files=1)
    (tmp_path / "out").mkdir()
    monkeypatch.chdir(tmp_path)
    assert bundle.copy_to("out/.") == tmp_path / "out"
    assert contents(tmp_path / "out")["only_in_A.txt"] == b"A"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "out"]
