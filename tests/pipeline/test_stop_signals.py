"""SIGTERM (``timeout``, ``docker stop``, CI cancellation) stops a run like the first Ctrl-C: one line, exit 143,
the run ``interrupted``; and listing runs shows a run whose process died as ``abandoned``, never ``running``, unless
it ran on another host (a shared root), whose pids mean nothing here."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from edgepipe.pipeline import cli
from edgepipe.pipeline.metadata import MetadataStore

REPO = Path(__file__).resolve().parents[2]

PIPELINE = textwrap.dedent("""\
    import time
    from pathlib import Path

    from edgepipe.pipeline import progress
    from edgepipe.pipeline.artifacts import Examples
    from edgepipe.pipeline.component import Output, component
    from edgepipe.pipeline.dag import Pipeline

    MARKER = Path(__file__).with_name("running")


    @component
    def waits(out: Output[Examples]) -> dict:
        out.write_json("value.json", {"value": 1})
        MARKER.write_text("running")
        for _ in range(600):  # a training loop: stops at the next step once asked
            progress.check_stop()
            time.sleep(0.1)
        return {}


    def create_pipeline(config):
        return Pipeline("term", [waits()])
    """)


def test_sigterm_stops_after_the_current_step_with_one_line_and_exit_143(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pipe.py").write_text(PIPELINE)
    root = tmp_path / "root"
    proc = subprocess.Popen([sys.executable, "-m", "edgepipe", "run", str(project / "pipe.py"), "--root", str(root),
                             "--output", str(tmp_path / "out")], cwd=REPO, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (project / "running").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert (project / "running").exists(), proc.communicate()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 143, stdout + stderr
    assert stderr.splitlines() == [
        "edgepipe: SIGTERM: stopping after the current step ... (SIGTERM again to abort now)",
        "edgepipe: interrupted by SIGTERM; completed components stay cached, the next run resumes"], stderr
    store = MetadataStore(root / "metadata.sqlite")
    (run,) = store.runs()
    assert run["status"] == "interrupted"
    assert [e["status"] for e in store.executions(run["id"])] == ["interrupted"]
    assert not any((root / "tmp").iterdir())  # the staging folder went to failed/, not left behind


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_listing_runs_marks_dead_processes_of_this_host_abandoned(tmp_path, capsys):
    root = tmp_path / "root"
    store = MetadataStore(root / "metadata.sqlite")
    dead, elsewhere, alive = (store.start_run(name, {}) for name in ("dead", "elsewhere", "alive"))
    pid = _dead_pid()
    with store._transaction() as db:
        db.execute("UPDATE runs SET pid=? WHERE id IN (?, ?)", (pid, dead, elsewhere))
        db.execute("UPDATE run_hosts SET host='another-machine' WHERE run_id=?", (elsewhere,))

    assert cli.main(["runs", "--root", str(root)]) == 0
    shown = {line.split()[1]: line.split()[2] for line in capsys.readouterr().out.splitlines()[1:]}
    assert shown == {"dead": "abandoned", "elsewhere": "running", "alive": "running"}
    assert cli.main(["show", dead, "--root", str(root)]) == 0
    assert f"run {dead}  pipeline dead  status abandoned" in capsys.readouterr().out
    assert os.getpid() == store.run(alive)["pid"]


def test_the_ui_reads_the_same_abandoned_rule_without_writing(tmp_path):
    """The UI shows a status without writing the store: it used to call any dead pid abandoned, another host's
    live run included; it now shares ``is_abandoned`` with ``mark_abandoned`` (and a SIGTERM's 143 is interrupted)."""
    from edgepipe.ui import jobs, runs as ui_runs

    store = MetadataStore(tmp_path / "metadata.sqlite")
    dead, elsewhere = (store.start_run(name, {}) for name in ("dead", "elsewhere"))
    pid = _dead_pid()
    with store._transaction() as db:
        db.execute("UPDATE runs SET pid=? WHERE id IN (?, ?)", (pid, dead, elsewhere))
        db.execute("UPDATE run_hosts SET host='another-machine' WHERE run_id=?", (elsewhere,))
    assert {r["pipeline"]: ui_runs.status_of(r) for r in store.runs()} == {"dead": "abandoned", "elsewhere": "running"}
    assert ui_runs.status_of(store.run(elsewhere)) == "running"
    assert [r["status"] for r in store.runs()] == ["running", "running"]  # nothing written
    assert jobs.EXIT_STATUS[143] == "interrupted"
