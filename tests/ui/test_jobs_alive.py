"""ui/jobs.py: a job left ``running`` by a UI that died is ``abandoned`` only when its process is gone, by the same
rule as the metadata store (pipeline/metadata.py ``process_alive``)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from edgepipe.pipeline.metadata import MetadataStore
from edgepipe.ui.jobs import JobQueue


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _reloaded(tmp_path, pid: int) -> str:
    (tmp_path / "ui").mkdir()
    (tmp_path / "ui" / "jobs.json").write_text(json.dumps([{"id": "j1", "status": "running", "pid": pid}]))
    queue = JobQueue(tmp_path, MetadataStore(tmp_path / "metadata.sqlite"))
    return queue.get("j1")["status"]


def test_a_job_whose_process_is_gone_is_abandoned(tmp_path):
    assert _reloaded(tmp_path, _dead_pid()) == "abandoned"


def test_a_job_whose_process_belongs_to_another_user_stays_running(tmp_path, monkeypatch):
    """kill(pid, 0) refused with PermissionError: the process exists (the UI had called it abandoned)."""
    def refused(pid, sig):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", refused)
    assert _reloaded(tmp_path, 4242) == "running"
