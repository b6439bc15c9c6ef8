"""The local runner: executes a pipeline in topological order with caching, lineage and resume.

Storage layout under ``root``::

    metadata.sqlite                  runs, executions, artifacts, lineage (see metadata.py)
    tmp/<execution>/<output>/        where a component writes while it runs
    artifacts/<node>/<execution>/    the same folder, renamed into place once the component returned
    failed/<node>/<execution>/       what a component that raised had written, kept for debugging, never reused

A component's outputs become visible in one ``rename`` and are registered in one transaction afterwards; nothing is
reused unless both happened. A run killed at any point (``kill -9`` included) therefore leaves no half-written
artifact that a later run would pick up, and the next run resumes at the first component without a complete
execution, because every earlier one is a cache hit. Independent nodes may run concurrently (``max_workers``).

Stopping: :meth:`LocalRunner.request_stop` (the CLI's first Ctrl-C or SIGTERM) starts no further component and
lets running ones stop at their next step boundary (``progress.check_stop``: training between batches); the run ends
``interrupted`` and :class:`~edgepipe.pipeline.progress.StopRequested` propagates. A ``KeyboardInterrupt`` in the
calling thread (the second Ctrl-C) ends the run ``interrupted`` at once without waiting for running components.
Progress events components report are recorded in the store and passed to the ``progress`` callback as
``("progress", node, {"event": Event})``.
"""
from __future__ import annotations

import graphlib
import json
import shutil
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgepipe.pipeline import progress as progress_events
from edgepipe.pipeline.artifacts import ARTIFACT_META, Artifact, artifact_type
from edgepipe.pipeline.cache import artifact_damage, cache_key, file_signature
from edgepipe.pipeline.component import Node
from edgepipe.pipeline.dag import Pipeline
from edgepipe.pipeline.errors import ComponentError, EdgepipeError, storage_failure
from edgepipe.pipeline.executor import invoke
from edgepipe.pipeline.metadata import MetadataStore

ProgressFn = Callable[[str, Node, dict[str, Any]], None]
WAKE_S = 0.2  # the longest a Ctrl-C waits for the main thread while components run


@dataclass
class ArtifactRecord:
    """A registered artifact: what downstream nodes and the caller get back."""

    id: str
    type: str
    uri: str
    fingerprint: str

    def open(self) -> Artifact:
        return artifact_type(self.type).open(self.uri)


@dataclass
class NodeResult:
    node: str
    execution_id: str
    cached: bool
    seconds: float
    outputs: dict[str, ArtifactRecord]
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    run_id: str
    status: str
    nodes: dict[str, NodeResult]
    error: ComponentError | None = None

    def artifact(self, node: str, output: str) -> Artifact:
        return self.nodes[node].outputs[output].open()

    @property
    def cache_hits(self) -> int:
        return sum(result.cached for result in self.nodes.values())


class LocalRunner:
    """Runs pipelines on this machine against a store rooted at ``root``."""

    def __init__(self, root: str | Path, *, use_cache: bool = True, max_workers: int = 1,
                 progress: ProgressFn | None = None):
        self.root = Path(root)
        self.use_cache = use_cache
        self.max_workers = max(1, max_workers)
        self.progress = progress or (lambda event, node, info: None)
        self._stop = threading.Event()
        self.root.mkdir(parents=True, exist_ok=True)
        self.store = MetadataStore(self.root / "metadata.sqlite")

    def request_stop(self) -> None:
        """Stop after the current step of each running component; no new component starts (signal-handler safe)."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def run(self, pipeline: Pipeline, config: dict[str, Any] | None = None) -> RunResult:
        self.store.mark_abandoned()
        self._remove_stale_staging()
        run_id = self.store.start_run(pipeline.name, config)
        results: dict[str, NodeResult] = {}
        error: ComponentError | None = None
        stopped: KeyboardInterrupt | None = None
        sorter: graphlib.TopologicalSorter = graphlib.TopologicalSorter(
            {node: pipeline.upstream(node) for node in pipeline.nodes})
        sorter.prepare()
        pool = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="edgepipe")
        running: dict[Future, Node] = {}
        try:
            while sorter.is_active():
                if error is None and not self._stop.is_set():
                    for node in sorter.get_ready():
                        running[pool.submit(self._execute, run_id, node, results)] = node
                if not running:
                    break
                # Wake up now and then: Python runs a signal handler (Ctrl-C) only in the main thread and only once it
                # wakes, and the kernel may deliver the signal to any thread (TensorFlow's, a component's).
                done, _ = wait(running, timeout=WAKE_S, return_when=FIRST_COMPLETED)
                for future in done:
                    node = running.pop(future)
                    try:
                        results[node.name] = future.result()
                        sorter.done(node)
                    except ComponentError as err:
                        error = error or err
                    except KeyboardInterrupt as stop:  # a component stopped at a step boundary
                        stopped = stopped or stop
                if self._stop.is_set():  # queued components that have not started never will
                    for future in [f for f in running if f.cancel()]:
                        running.pop(future)
        except BaseException as abort:  # second Ctrl-C here: end now, without waiting for running components
            self._stop.set()  # ... which stop at their next step if the process lives on (a library caller)
            pool.shutdown(wait=False, cancel_futures=True)
            self.store.end_run(run_id, "interrupted", f"aborted ({type(abort).__name__}) while running "
                               f"{', '.join(n.name for n in running.values()) or 'nothing'}")
            raise
        pool.shutdown(wait=True)
        if stopped is None and self._stop.is_set() and sorter.is_active():
            stopped = progress_events.StopRequested("stop requested")
        if stopped is not None:
            self.store.end_run(run_id, "interrupted", "stopped on request; completed components stay cached")
            raise stopped
        status = "failed" if error else "complete"
        self.store.end_run(run_id, status, str(error) if error else None)
        return RunResult(run_id, status, results, error)

    # ---- one node ------------------------------------------------------------------------------------------------
    def _execute(self, run_id: str, node: Node, results: dict[str, NodeResult]) -> NodeResult:
        if self._stop.is_set():  # queued before the stop request, picked up after it: never starts
            raise progress_events.StopRequested(f"'{node.name}' not started: stop requested")
        component = node.component
        inputs = {name: results[ref.node.name].outputs[ref.name] for name, ref in node.inputs.items()}
        params = component.resolved_params(node)
        key = cache_key(component, params, {name: record.fingerprint for name, record in inputs.items()})
        started = time.perf_counter()
        execution_id = self.store.start_execution(run_id, node.name, component.name, component.code_version, key,
                                                  params)
        cached = self.store.find_cached(key) if self.use_cache else None
        damage = self._cache_damage(cached, component.outputs) if cached else None
        if cached and damage is None:
            self.store.complete_execution(execution_id, {}, {n: r.id for n, r in inputs.items()},
                                          _load_metrics(cached), cached_from=cached["id"])
            outputs = {name: ArtifactRecord(a["id"], a["type"], a["uri"], a["fingerprint"])
                       for name, a in cached["artifacts"].items()}
            result = NodeResult(node.name, execution_id, True, time.perf_counter() - started, outputs,
                                _load_metrics(cached))
            self.progress("cached", node, {"seconds": result.seconds, "metrics": result.metrics})
            return result

        self.progress("start", node, {"reason": f"cached result of {node.name} is corrupt ({damage}): re-executing"}
                      if damage else {})
        staging = self.root / "tmp" / execution_id
        try:
            input_artifacts = {name: record.open() for name, record in inputs.items()}
            input_artifacts.update({name: None for name in component.optional_inputs if name not in inputs})
            context = progress_events.Execution(node.name, execution_id, key, stop=self._stop,
                                                sink=lambda event: self._record_progress(node, event))
            _, metrics = invoke(component, input_artifacts, {name: staging / name for name in component.outputs},
                                params, execution=context)
            final = self.root / "artifacts" / node.name / execution_id
            final.parent.mkdir(parents=True, exist_ok=True)
            staging.rename(final)
        except BaseException as err:
            if storage_failure(err) is not None:  # half-written outputs of a full disk: worthless, and in the way
                shutil.rmtree(staging, ignore_errors=True)
            kept = self._keep_for_inspection(staging, node.name, execution_id)
            if kept and isinstance(err, EdgepipeError) and len(err.args) == 1 and str(staging) in str(err.args[0]):
                err.args = (str(err.args[0]).replace(str(staging), str(kept)),)  # a file it names moved there
            interrupted = isinstance(err, KeyboardInterrupt)
            wrapped = ComponentError(node.name, err, writing=staging) if isinstance(err, Exception) else None
            # the store records the line the user saw (where and what), so `edgepipe show` says the same
            self.store.fail_execution(execution_id, str(wrapped) if wrapped else "".join(
                traceback.format_exception_only(type(err), err)).strip(),
                status="interrupted" if interrupted else "failed")
            if wrapped is None:
                if interrupted:
                    self.progress("interrupted", node, {"seconds": time.perf_counter() - started})
                raise
            self.progress("failed", node, {"error": str(wrapped), "seconds": time.perf_counter() - started})
            raise wrapped from err

        records, signatures = {}, {}
        for name, typ in component.outputs.items():
            artifact = typ.open(final / name)
            signatures[name] = file_signature(final / name)
            records[name] = (typ.type_name, str(final / name), artifact.content_fingerprint())
        ids = self.store.complete_execution(execution_id, records, {n: r.id for n, r in inputs.items()}, metrics,
                                            signatures=signatures)
        outputs = {name: ArtifactRecord(ids[name], *records[name]) for name in records}
        result = NodeResult(node.name, execution_id, False, time.perf_counter() - started, outputs, metrics)
        self.progress("done", node, {"seconds": result.seconds, "metrics": metrics})
        return result

    def _record_progress(self, node: Node, event: progress_events.Event) -> None:
        """A component's (already throttled) progress event: into the store for other readers, then the display."""
        self.store.record_progress(event.execution_id, event.kind, event.step, event.total, event.values, event.time)
        self.progress("progress", node, {"event": event})

    def _keep_for_inspection(self, staging: Path, node: str, execution_id: str) -> Path | None:
        """A failed component's partial outputs move to ``failed/`` for debugging (returned; None: it wrote
        nothing); they are never registered, so no later run can reuse them."""
        if not staging.exists():
            return None
        target = self.root / "failed" / node / execution_id
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(target)
        return target

    def _cache_damage(self, cached: dict[str, Any], expected_outputs: dict[str, type]) -> str | None:
        """Why a cache hit cannot be reused, or None. Every declared output must be registered, finished
        (``_artifact.json``) and hold what was registered: a reused corrupt artifact would be shipped or break
        every later run, so a damaged one makes the node re-execute (and its consumers, whose keys change)."""
        artifacts = cached["artifacts"]
        if set(artifacts) != set(expected_outputs):
            return "outputs not all registered"
        for name, record in sorted(artifacts.items()):
            if not (Path(record["uri"]) / ARTIFACT_META).exists():
                return f"output {name} is missing"
            signature = json.loads(record["signature"]) if record.get("signature") else None
            damage, current = artifact_damage(record["uri"], record["fingerprint"], signature)
            if damage:
                return f"{name}: {damage}"
            if current != signature:  # content re-hashed and intact: next time the cheap check suffices
                self.store.update_signature(record["id"], current)
        return None

    def _remove_stale_staging(self) -> None:
        """Staging folders belong to executions that never finished; they are never reused, so clear them."""
        staging_root = self.root / "tmp"
        if not staging_root.exists():
            return
        running = {row["id"] for row in self.store._query("SELECT id FROM executions WHERE status='running'")}
        for folder in staging_root.iterdir():
            if folder.name not in running:
                shutil.rmtree(folder, ignore_errors=True)


def _load_metrics(execution: dict[str, Any]) -> dict[str, Any]:
    return json.loads(execution.get("metrics") or "{}")
