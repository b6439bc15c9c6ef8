"""MetadataStore (pipeline/metadata.py): run ids."""


def test_a_run_id_taken_in_the_same_second_is_drawn_again(tmp_path, monkeypatch):
    """Run ids are the start second plus 6 random hex digits; 3,000 runs started by a script drew a taken one
    (UNIQUE constraint failed) in a clean-clone test run. A taken id is drawn again instead."""
    import uuid as uuid_module

    from edgepipe.pipeline import metadata
    from edgepipe.pipeline.metadata import MetadataStore

    store = MetadataStore(tmp_path / "metadata.sqlite")
    same, other = uuid_module.UUID(hex="aaaaaa" + "0" * 26), uuid_module.UUID(hex="bbbbbb" + "0" * 26)
    draws = iter([same, same, other])
    monkeypatch.setattr(metadata.uuid, "uuid4", lambda: next(draws))
    monkeypatch.setattr(metadata.time, "strftime", lambda fmt: "20260101-000000")
    first, second = store.start_run("p", {}), store.start_run("p", {})  # the second draws aaaaaa (taken), then bbbbbb
    monkeypatch.undo()
    assert (first, second) == ("20260101-000000-aaaaaa", "20260101-000000-bbbbbb")
    assert {r["id"] for r in store.runs()} == {first, second}


def test_process_alive_counts_another_users_process_alive_and_a_gone_one_dead(monkeypatch):
    """kill(pid, 0) raising PermissionError means the pid exists (another user's process): alive. One rule for the
    store's abandoned runs and the UI's job queue."""
    import os
    import subprocess
    import sys

    from edgepipe.pipeline.metadata import process_alive

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not process_alive(child.pid) and not process_alive(None) and process_alive(os.getpid())

    def refused(pid, sig):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", refused)
    assert process_alive(4242)
