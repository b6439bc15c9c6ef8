"""The metadata store: runs, executions, artifacts and lineage in one SQLite file (MLMD's role in TFX).

The store is the source of truth for the cache: an artifact directory counts only once the execution that produced
it is recorded ``complete`` here, in the same transaction that registers its artifacts. A process killed at any
point therefore leaves at worst an unregistered directory or an execution still marked ``running``, both of which
later runs ignore (and the latter is marked ``abandoned``). A run stopped by Ctrl-C ends ``interrupted``: like a
failed run, everything it completed is reusable and nothing it left half-done is.

``progress`` holds what running components report (epochs with their losses, batches, windows evaluated, variants
converted; see ``progress.py``), so anything following a running pipeline can read it while it runs.
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, status TEXT NOT NULL, pid INTEGER,
    started REAL NOT NULL, ended REAL, config TEXT, error TEXT
);
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(id), node TEXT NOT NULL, component TEXT NOT NULL,
    code_version TEXT NOT NULL, cache_key TEXT NOT NULL, params TEXT NOT NULL, status TEXT NOT NULL,
    cached INTEGER NOT NULL DEFAULT 0, source_execution TEXT, started REAL NOT NULL, ended REAL,
    metrics TEXT, error TEXT
);
CREATE INDEX IF NOT EXISTS executions_by_key ON executions(cache_key, status);
CREATE TABLE IF NOT EXISTS artifacts (
    id TEXT PRIMARY KEY, type TEXT NOT NULL, uri TEXT NOT NULL, fingerprint TEXT NOT NULL,
    producer TEXT NOT NULL REFERENCES executions(id), name TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS artifact_signatures (
    artifact_id TEXT PRIMARY KEY REFERENCES artifacts(id), signature TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    execution_id TEXT NOT NULL REFERENCES executions(id), artifact_id TEXT NOT NULL REFERENCES artifacts(id),
    kind TEXT NOT NULL CHECK (kind IN ('input', 'output')), name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS progress (
    execution_id TEXT NOT NULL REFERENCES executions(id), time REAL NOT NULL, kind TEXT NOT NULL,
    step INTEGER NOT NULL, total INTEGER, payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS progress_by_execution ON progress(execution_id, time);
CREATE TABLE IF NOT EXISTS run_hosts (run_id TEXT PRIMARY KEY REFERENCES runs(id), host TEXT NOT NULL);
"""


class MetadataStore:
    """Thread-safe access to the SQLite metadata file (one connection, serialized by a lock)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA busy_timeout=10000")
            self._conn.executescript(SCHEMA)
        except sqlite3.DatabaseError as err:  # garbage or a truncated file: say which file, touch nothing
            self._conn.close()
            if isinstance(err, sqlite3.OperationalError):  # locked, disk full: not the file's content
                raise
            from edgepipe.pipeline.errors import DataError

            raise DataError(f"{self.path}: not a usable metadata store ({err}); move it aside to start a fresh "
                            "root") from None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    if self._conn.in_transaction:  # SQLite may have rolled back itself (SQLITE_FULL)
                        self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.OperationalError as err:  # SQLite rolls back on a full disk; say so, naming the file
                if getattr(err, "sqlite_errorcode", None) != sqlite3.SQLITE_FULL:
                    raise
                from edgepipe.pipeline.errors import StorageError

                raise StorageError(f"no space left on device writing {self.path}") from None

    def _query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def close(self) -> None:
        self._conn.close()

    # ---- runs ----------------------------------------------------------------------------------------------------
    def start_run(self, pipeline: str, config: dict[str, Any] | None) -> str:
        """A new run id: the start second plus 6 random hex digits (short enough to type). Runs started in the same
        second (a search's trials, a script) can draw the same suffix, so a taken id is drawn again."""
        for attempt in range(8):
            run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6 if attempt < 4 else 12]
            try:
                with self._transaction() as db:
                    db.execute("INSERT INTO runs (id, pipeline, status, pid, started, config) VALUES (?,?,?,?,?,?)",
                               (run_id, pipeline, "running", os.getpid(), time.time(),
                                json.dumps(config, default=str)))
                    db.execute("INSERT INTO run_hosts VALUES (?,?)", (run_id, socket.gethostname()))
                return run_id
            except sqlite3.IntegrityError:
                continue
        raise RuntimeError("could not draw an unused run id")  # 8 collisions in a row: not a chance event

    def end_run(self, run_id: str, status: str, error: str | None = None) -> None:
        with self._transaction() as db:
            db.execute("UPDATE runs SET status=?, ended=?, error=? WHERE id=?", (status, time.time(), error, run_id))
            if status == "interrupted":  # aborted (second Ctrl-C) while components ran: they never finish here
                db.execute("UPDATE executions SET status='interrupted', ended=? WHERE run_id=? AND status='running'",
                           (time.time(), run_id))

    def mark_abandoned(self) -> int:
        """Mark runs whose process is gone (killed, crashed) and their running executions as abandoned.

        Only runs started on this host: a root on a shared disk may hold a live run of another machine, whose pid
        means nothing here (runs recorded before hosts were, in ``run_hosts``, count as this host's, as before)."""
        stale = [row["id"] for row in self._query(
                 "SELECT r.id, r.status, r.pid, h.host FROM runs r LEFT JOIN run_hosts h ON h.run_id = r.id "
                 "WHERE r.status='running'") if is_abandoned(dict(row))]
        if not stale:
            return 0
        with self._transaction() as db:
            for run_id in stale:
                db.execute("UPDATE runs SET status='abandoned', ended=COALESCE(ended, ?) WHERE id=?",
                           (time.time(), run_id))
                db.execute("UPDATE executions SET status='abandoned' WHERE run_id=? AND status='running'", (run_id,))
        return len(stale)

    def runs(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT r.*, (SELECT COUNT(*) FROM executions e WHERE e.run_id=r.id) AS n_exec, "
            "(SELECT COUNT(*) FROM executions e WHERE e.run_id=r.id AND e.cached=1) AS n_cached, "
            "(SELECT host FROM run_hosts h WHERE h.run_id=r.id) AS host "
            "FROM runs r ORDER BY started DESC LIMIT ?", (limit,))
        return [dict(row) for row in rows]

    def run(self, run_id: str) -> dict[str, Any] | None:
        rows = self._query("SELECT r.*, (SELECT host FROM run_hosts h WHERE h.run_id=r.id) AS host FROM runs r "
                           "WHERE r.id=? OR r.id LIKE ? ORDER BY r.started DESC", (run_id, run_id + "%"))
        return dict(rows[0]) if rows else None

    # ---- executions ----------------------------------------------------------------------------------------------
    def start_execution(self, run_id: str, node: str, component: str, code_version: str, cache_key: str,
                        params: dict[str, Any]) -> str:
        from edgepipe.pipeline.component import param_json  # a section parameter: recorded as its fields

        execution_id = uuid.uuid4().hex
        with self._transaction() as db:
            db.execute(
                "INSERT INTO executions (id, run_id, node, component, code_version, cache_key, params, status, "
                "started) VALUES (?,?,?,?,?,?,?,?,?)",
                (execution_id, run_id, node, component, code_version, cache_key,
                 json.dumps(param_json(params), sort_keys=True, default=str), "running", time.time()))
        return execution_id

    def complete_execution(self, execution_id: str, outputs: dict[str, tuple[str, str, str]],
                           inputs: dict[str, str], metrics: dict[str, Any] | None,
                           cached_from: str | None = None,
                           signatures: dict[str, dict[str, Any]] | None = None) -> dict[str, str]:
        """Register outputs {name: (type, uri, fingerprint)} and input links in one transaction; returns ids.
        ``signatures`` {name: {file: [size, mtime_ns]}} lets a later reuse check skip hashing (cache.py); they
        live in their own table so that a store stays writable by an edgepipe that predates them."""
        now = time.time()
        artifact_ids: dict[str, str] = {}
        with self._transaction() as db:
            if cached_from is None:
                for name, (type_name, uri, fingerprint) in outputs.items():
                    artifact_id = uuid.uuid4().hex
                    artifact_ids[name] = artifact_id
                    db.execute("INSERT INTO artifacts VALUES (?,?,?,?,?,?,?)",
                               (artifact_id, type_name, uri, fingerprint, execution_id, name, now))
                    if (signatures or {}).get(name) is not None:
                        db.execute("INSERT INTO artifact_signatures VALUES (?,?)",
                                   (artifact_id, json.dumps(signatures[name], sort_keys=True)))
            else:
                for row in db.execute("SELECT id, name FROM artifacts WHERE producer=?", (cached_from,)):
                    artifact_ids[row["name"]] = row["id"]
            for name, artifact_id in artifact_ids.items():
                db.execute("INSERT INTO events VALUES (?,?,?,?)", (execution_id, artifact_id, "output", name))
            for name, artifact_id in inputs.items():
                db.execute("INSERT INTO events VALUES (?,?,?,?)", (execution_id, artifact_id, "input", name))
            db.execute("UPDATE executions SET status='complete', ended=?, metrics=?, cached=?, source_execution=? "
                       "WHERE id=?", (now, json.dumps(metrics or {}, default=str), int(cached_from is not None),
                                     cached_from, execution_id))
        return artifact_ids

    def update_signature(self, artifact_id: str, signature: dict[str, Any]) -> None:
        """Record an artifact's current file signature after its content was re-hashed and found intact."""
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO artifact_signatures VALUES (?,?)",
                       (artifact_id, json.dumps(signature, sort_keys=True)))

    def fail_execution(self, execution_id: str, error: str, status: str = "failed") -> None:
        """End an execution that produced nothing reusable: ``failed``, or ``interrupted`` (Ctrl-C)."""
        with self._transaction() as db:
            db.execute("UPDATE executions SET status=?, ended=?, error=? WHERE id=?",
                       (status, time.time(), error, execution_id))

    # ---- progress ------------------------------------------------------------------------------------------------
    def record_progress(self, execution_id: str, kind: str, step: int, total: int | None,
                        payload: dict[str, Any], at: float | None = None) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO progress VALUES (?,?,?,?,?,?)",
                       (execution_id, time.time() if at is None else at, kind, int(step), total,
                        json.dumps(payload, default=str)))

    def progress(self, run_id: str | None = None, execution_id: str | None = None, since: float | None = None,
                 kind: str | None = None) -> list[dict[str, Any]]:
        """Progress events in time order, of one run or one execution, newer than ``since``, of one kind."""
        sql = ("SELECT p.*, e.node FROM progress p JOIN executions e ON e.id = p.execution_id WHERE 1=1")
        args: list[Any] = []
        for clause, value in (("e.run_id=?", run_id), ("p.execution_id=?", execution_id), ("p.time>?", since),
                              ("p.kind=?", kind)):
            if value is not None:
                sql += f" AND {clause}"
                args.append(value)
        rows = self._query(sql + " ORDER BY p.time, p.rowid", tuple(args))
        return [{**dict(row), "payload": json.loads(row["payload"])} for row in rows]

    def find_cached(self, cache_key: str) -> dict[str, Any] | None:
        """The newest original (non-cached) complete execution with this key, with its output artifacts."""
        rows = self._query("SELECT * FROM executions WHERE cache_key=? AND status='complete' AND cached=0 "
                           "ORDER BY ended DESC LIMIT 1", (cache_key,))
        if not rows:
            return None
        execution = dict(rows[0])
        execution["artifacts"] = {row["name"]: dict(row) for row in self._query(
            "SELECT a.*, s.signature FROM artifacts a LEFT JOIN artifact_signatures s ON s.artifact_id = a.id "
            "WHERE a.producer=?", (execution["id"],))}
        return execution

    def executions(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._query("SELECT * FROM executions WHERE run_id=? ORDER BY started", (run_id,))
        result = []
        for row in rows:
            execution = dict(row)
            producer = execution["source_execution"] or execution["id"]
            execution["artifacts"] = [dict(a) for a in self._query(
                "SELECT * FROM artifacts WHERE producer=? ORDER BY name", (producer,))]
            result.append(execution)
        return result

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """Input/output links of a run's executions, with the node and, for each artifact, the run and node that
        produced it (read-only; for lineage views and drawing a run's DAG)."""
        rows = self._query(
            "SELECT ev.execution_id, ev.artifact_id, ev.kind, ev.name, e.node, a.type, a.uri, "
            "p.run_id AS producer_run, p.node AS producer_node FROM events ev "
            "JOIN executions e ON e.id = ev.execution_id JOIN artifacts a ON a.id = ev.artifact_id "
            "JOIN executions p ON p.id = a.producer WHERE e.run_id=? ORDER BY e.started, ev.kind, ev.name",
            (run_id,))
        return [dict(row) for row in rows]

    def artifact(self, artifact_id: str) -> dict[str, Any] | None:
        """One registered artifact with the run and node that produced it, or None (read-only)."""
        rows = self._query("SELECT a.*, e.run_id, e.node FROM artifacts a JOIN executions e ON e.id = a.producer "
                           "WHERE a.id=?", (artifact_id,))
        return dict(rows[0]) if rows else None

    def artifacts_of_type(self, type_name: str, limit: int = 200) -> list[dict[str, Any]]:
        """The newest registered artifacts of one type, with their producing run and node (read-only)."""
        rows = self._query("SELECT a.*, e.run_id, e.node FROM artifacts a JOIN executions e ON e.id = a.producer "
                           "WHERE a.type=? ORDER BY a.created DESC LIMIT ?", (type_name, limit))
        return [dict(row) for row in rows]

    def last_artifact(self, pipeline: str, type_name: str) -> dict[str, Any] | None:
        """The newest artifact of ``type_name`` a complete execution in a run of ``pipeline`` registered, with its
        run and node, or None (read-only; a retrain finds the last exported bundle it must not regress from)."""
        rows = self._query("SELECT a.*, e.run_id, e.node FROM artifacts a JOIN executions e ON e.id = a.producer "
                           "JOIN runs r ON r.id = e.run_id WHERE r.pipeline=? AND a.type=? AND e.status='complete' "
                           "ORDER BY a.created DESC LIMIT 1", (pipeline, type_name))
        return dict(rows[0]) if rows else None

    def lineage(self, artifact_id: str) -> list[dict[str, Any]]:
        """Every artifact upstream of ``artifact_id`` (walks output -> producing execution -> its inputs)."""
        seen: dict[str, dict[str, Any]] = {}
        frontier = [artifact_id]
        while frontier:
            current = frontier.pop()
            rows = self._query("SELECT * FROM artifacts WHERE id=?", (current,))
            if not rows or current in seen:
                continue
            artifact = dict(rows[0])
            seen[current] = artifact
            for event in self._query("SELECT artifact_id FROM events WHERE execution_id=? AND kind='input'",
                                     (artifact["producer"],)):
                frontier.append(event["artifact_id"])
        return list(seen.values())


def process_alive(pid: int | None) -> bool:
    """Whether ``pid`` is a live process (a run or UI job marked running whose process is gone was abandoned).

    ``kill(pid, 0)`` refused with PermissionError means the process exists but belongs to another user: it is alive
    (calling it dead would mark a live run abandoned); only ProcessLookupError says it is gone. The one rule for the
    metadata store and the UI's job queue."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_abandoned(run: dict[str, Any]) -> bool:
    """A run recorded ``running`` whose process is gone, judged only where the pid means something: runs started on
    this host (or recorded before hosts were, which count as this host's). One rule for ``mark_abandoned`` and for
    readers that show a status without writing the store (the UI)."""
    return (run["status"] == "running" and run.get("host") in (None, socket.gethostname())
            and not process_alive(run.get("pid")))
