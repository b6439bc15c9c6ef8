"""The launch queue: runs wait their turn and a worker executes them one at a time (DIGITS' scheduling).

Each job is one ``edgepipe run CONFIG --root ROOT --set ...`` in its own process, so a crash, a memory-hungry
training or TensorFlow's global state never touches the UI process, and a run launched here is recorded exactly as
one launched from a terminal. Cancelling a queued job drops it; cancelling a running one sends SIGINT, the CLI's
first Ctrl-C: the run stops after the current step, ends ``interrupted``, and the same config launched again
resumes from the cache. The queue lives in ``ROOT/ui/jobs.json`` (logs beside it) so a restarted UI still lists
what it ran; a job left ``running`` by a UI that died is shown ``abandoned`` unless its process still lives.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from edgepipe.pipeline.metadata import MetadataStore, process_alive

EXIT_STATUS = {0: "complete", 130: "interrupted", 143: "interrupted"}  # 143: SIGTERM, handled like Ctrl-C
RUN_LINE = re.compile(r"^run (\S+) (complete|failed)")


def _restore_sigint() -> None:
    """In the child: SIGINT as on a terminal (a thread-started child may inherit it ignored, and edgepipe then
    leaves it ignored), so the cancel button's SIGINT is the CLI's first Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class JobQueue:
    """Persistent FIFO of launch requests plus the worker thread that runs them, one process at a time."""

    def __init__(self, root: Path, store: MetadataStore, workdir: Path | None = None, poll_s: float = 0.3):
        self.root = Path(root)
        self.store = store
        self.workdir = Path(workdir or os.getcwd())
        self.poll_s = poll_s
        self.folder = self.root / "ui"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.file = self.folder / "jobs.json"
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._process: subprocess.Popen | None = None
        self._jobs: list[dict[str, Any]] = self._load()
        self._thread: threading.Thread | None = None

    # ---- state ---------------------------------------------------------------------------------------------------
    def _load(self) -> list[dict[str, Any]]:
        try:
            jobs = json.loads(self.file.read_text())
        except (OSError, ValueError):
            return []
        for job in jobs:
            if job["status"] == "running" and not process_alive(job.get("pid")):
                job["status"] = "abandoned"
        return jobs

    def _save(self) -> None:
        partial = self.file.with_suffix(".partial")
        partial.write_text(json.dumps(self._jobs, indent=1))
        partial.replace(self.file)

    def _update(self, job_id: str, **changes: Any) -> None:
        with self._lock:
            for job in self._jobs:
                if job["id"] == job_id:
                    job.update(changes)
            self._save()

    def jobs(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(job) for job in reversed(self._jobs)]

    def get(self, job_id: str) -> dict[str, Any] | None:
        return next((job for job in self.jobs() if job["id"] == job_id), None)

    def log_path(self, job_id: str) -> Path:
        return self.folder / "jobs" / f"{job_id}.log"

    # ---- requests ------------------------------------------------------------------------------------------------
    def submit(self, config: Path, overrides: list[str], label: str = "") -> dict[str, Any]:
        job = {"id": time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4], "config": str(config),
               "label": label or Path(config).stem, "overrides": list(overrides), "status": "queued",
               "created": time.time(), "started": None, "ended": None, "pid": None, "run_id": None,
               "exit_code": None}
        with self._lock:
            self._jobs.append(job)
            self._save()
        self._wake.set()
        return dict(job)

    def cancel(self, job_id: str) -> str:
        """Drop a queued job, or interrupt a running one (SIGINT: resumable). Returns what was done."""
        with self._lock:
            job = next((j for j in self._jobs if j["id"] == job_id), None)
            if job is None:
                return "unknown"
            if job["status"] == "queued":
                job["status"] = "cancelled"
                job["ended"] = time.time()
                self._save()
                return "cancelled"
            process = self._process
            if job["status"] == "running" and process is not None and process.pid == job["pid"]:
                job["cancel_requested"] = True
                self._save()
                process.send_signal(signal.SIGINT)
                return "interrupting"
            return job["status"]

    # ---- worker --------------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="edgepipe-ui-worker", daemon=True)
            self._thread.start()

    def close(self, wait_s: float = 10.0) -> None:
        """Stop taking jobs; interrupt a running one (it stays resumable) and wait a little for it to record so."""
        self._closing.set()
        self._wake.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(wait_s)
            except subprocess.TimeoutExpired:
                process.kill()
        if self._thread is not None:
            self._thread.join(wait_s)

    def _next(self) -> dict[str, Any] | None:
        with self._lock:
            return next((dict(j) for j in self._jobs if j["status"] == "queued"), None)

    def _work(self) -> None:
        while not self._closing.is_set():
            job = self._next()
            if job is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:
                self._run(job)
            except Exception as err:  # a job that cannot even start must not stop the worker
                self._update(job["id"], status="failed", ended=time.time(), error=f"{type(err).__name__}: {err}")

    def _run(self, job: dict[str, Any]) -> None:
        log = self.log_path(job["id"])
        log.parent.mkdir(parents=True, exist_ok=True)
        output = Path(tempfile.mkdtemp(prefix="edgepipe-ui-")) / "bundle"  # the bundle also stays in the root
        command = [sys.executable, "-m", "edgepipe", "run", job["config"], "--root", str(self.root),
                   "--output", str(output)]
        for override in job["overrides"]:
            command += ["--set", override]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            with log.open("w", encoding="utf-8") as handle:
                handle.write("$ edgepipe " + " ".join(command[3:]) + "\n")
                handle.flush()
                process = subprocess.Popen(command, cwd=self.workdir, stdout=handle, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, env=env, preexec_fn=_restore_sigint,
                                           start_new_session=True)
                self._process = process
                self._update(job["id"], status="running", started=time.time(), pid=process.pid)
                while process.poll() is None:
                    if self.get(job["id"]).get("run_id") is None:
                        run_id = self._run_of(process.pid)
                        if run_id:
                            self._update(job["id"], run_id=run_id)
                    time.sleep(self.poll_s)
        finally:
            self._process = None
            shutil.rmtree(output.parent, ignore_errors=True)
        code = process.returncode
        run_id = self.get(job["id"]).get("run_id") or self._run_of(process.pid) or _run_in_log(log)
        error = None if code == 0 else _last_error(log)
        self._update(job["id"], status=EXIT_STATUS.get(code, "failed"), ended=time.time(), exit_code=code,
                     run_id=run_id, error=error)

    def _run_of(self, pid: int) -> str | None:
        for run in self.store.runs(20):
            if run["pid"] == pid:
                return run["id"]
        return None


def _run_in_log(log: Path) -> str | None:
    try:
        for line in reversed(log.read_text(encoding="utf-8", errors="replace").splitlines()):
            match = RUN_LINE.match(line)
            if match:
                return match.group(1)
    except OSError:
        pass
    return None


def _last_error(log: Path) -> str | None:
    """The CLI's own ``edgepipe: error:`` line (every failure ends with exactly one)."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    errors = [line for line in lines if line.startswith("edgepipe: ")]
    return errors[-1] if errors else (lines[-1] if lines else None)
