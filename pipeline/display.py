"""What ``edgepipe run`` shows while a pipeline runs, and how it stops: the progress printer the runner reports to,
and the Ctrl-C and SIGTERM handling (first signal: stop after the current step; second: abort now), and the summary
printed when it ends (rejected rows, validation anomalies, the bundle's metrics and gates).

Exit status of a stopped run: 130 (128 + SIGINT) after Ctrl-C, 143 (128 + SIGTERM) after SIGTERM, the codes a shell,
``docker stop``, systemd or a CI runner expect of a process that honoured the signal; the run ends ``interrupted``
either way and the next run resumes it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []  # the stop signals this process received, in order (the exit status names the first)


def interrupt_exit_code() -> int:
    """128 + the first stop signal received (SIGTERM: 143); 130 when the stop was a plain KeyboardInterrupt."""
    return 128 + (_received[0] if _received else signal.SIGINT)


def interrupt_name() -> str:
    return signal.Signals(_received[0]).name if _received else "SIGINT"


@contextmanager
def stop_on_ctrl_c(runner: Any, printer: "ProgressPrinter") -> Iterator[None]:
    """First Ctrl-C or SIGTERM: the runner stops after the current step (training: the current batch) and the run
    ends ``interrupted``; a second one: ``KeyboardInterrupt`` at once. ``timeout``, ``docker stop``, systemd and CI
    cancellation send SIGTERM, and a run they stop must end recorded as a Ctrl-C'd one, not stay ``running``.
    Signals reach only the main thread, while components run in the runner's worker threads, so the handler lives
    here and they only see the stop flag. A signal the process was started ignoring (``nohup``) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield  # not the main thread: no signals here
        return

    def on_signal(signum, frame):
        _received.append(signum)
        if runner.stop_requested:
            raise KeyboardInterrupt
        runner.request_stop()
        name = signal.Signals(signum).name
        said = ("", "Ctrl-C") if signum == signal.SIGINT else (f"{name}: ", name)
        printer.notice(f"edgepipe: {said[0]}stopping after the current step ... ({said[1]} again to abort now)")

    _received.clear()
    previous = {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS
                if signal.getsignal(signum) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def leave_after_interrupt(code: int, program: bool) -> None:
    """Leave at once after Ctrl-C when this process is the ``edgepipe`` program (or components still run after
    an abort): the interpreter would otherwise wait for the runner's worker threads and for TensorFlow's and
    Beam's teardown (about 5 s measured) before the prompt returns. Nothing is lost: every store transaction has
    committed or rolled back, and a component's files count only once registered."""
    workers = any(t.is_alive() and t.name.startswith("edgepipe") for t in threading.enumerate())
    if program or workers:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class ProgressPrinter:
    """One line per component as it starts and ends, and, while it runs, what it reports (epochs with their loss,
    batches of a long epoch, windows evaluated, variants converted): rewritten in place on a terminal, as plain
    lines otherwise (CI, logs), where epochs always get a line and finer steps one every ``PLAIN_EVERY_S``."""

    PLAIN_EVERY_S = 10.0

    def __init__(self, total: int, stream: Any = None, live: bool | None = None):
        self.total = total
        self.finished = 0
        self.stream = stream
        self.live = bool(getattr(self._out, "isatty", lambda: False)()) if live is None else live
        self._lock = threading.Lock()
        self._shown = False                       # a live line is on screen
        self._epoch: dict[str, str] = {}          # node -> its last epoch's text
        self._started: dict[str, float] = {}
        self._plain_at: dict[tuple[str, str], float] = {}

    @property
    def _out(self):
        return self.stream or sys.stdout

    def __call__(self, event: str, node: Any, info: dict[str, Any]) -> None:
        with self._lock:
            if event == "progress":
                self._progress(node.name, info["event"])
                return
            if event == "start":
                self._started[node.name] = time.perf_counter()
                if info.get("reason"):  # why a cache hit is not reused (runner: corrupt cached artifact)
                    self._line(f"[{self.finished + 1:>2}/{self.total}] {node.name:<28} {info['reason']}")
                self._line(f"[{self.finished + 1:>2}/{self.total}] {node.name:<28} running ...")
                return
            self.finished += 1
            self._epoch.pop(node.name, None)
            label = {"cached": "cached", "done": "done", "failed": "FAILED", "interrupted": "interrupted"}[event]
            self._line(f"[{self.finished:>2}/{self.total}] {node.name:<28} {label} ({info.get('seconds', 0):.1f}s)")

    def notice(self, text: str) -> None:
        """A message on stderr that must not be overwritten by the live line (called from a signal handler: never
        blocks on the lock a printing thread might hold)."""
        locked = self._lock.acquire(timeout=0.2)
        try:
            self._clear()
            print(text, file=sys.stderr, flush=True)
        except (RuntimeError, ValueError, OSError):  # re-entrant write into a stream the main thread was using
            pass
        finally:
            if locked:
                self._lock.release()

    def _progress(self, name: str, event: Any) -> None:
        text = _describe(event)
        if event.kind == "epoch":
            self._epoch[name] = text
        elapsed = time.perf_counter() - self._started.get(name, time.perf_counter())
        prefix = f"[{self.finished + 1:>2}/{self.total}] {name:<28} "
        if self.live:  # elapsed first: the line is cut at the terminal's width
            shown = text if event.kind == "epoch" or name not in self._epoch else f"{text} | last {self._epoch[name]}"
            width = shutil.get_terminal_size((100, 20)).columns
            line = f"{prefix}{elapsed:>5.0f}s  {shown}"
            self._out.write("\r\x1b[K" + line[:max(10, width - 1)])
            self._out.flush()
            self._shown = True
            return
        now = time.monotonic()
        key = (name, event.kind)
        final = event.total is not None and event.step >= event.total
        if event.kind == "epoch" or final or now - self._plain_at.get(key, -self.PLAIN_EVERY_S) >= self.PLAIN_EVERY_S:
            self._plain_at[key] = now
            self._line(f"{prefix}{text}")

    def _clear(self) -> None:
        if self._shown:
            self._out.write("\r\x1b[K")
            self._out.flush()
            self._shown = False

    def _line(self, text: str) -> None:
        self._clear()
        print(text, file=self._out, flush=True)


def _describe(event: Any) -> str:
    """``epoch 15/40 loss 0.0123 val_loss 0.015``: the step, then the reported values (numbers to 4 digits)."""
    step = f"{event.kind} {event.step}/{event.total}" if event.total else f"{event.kind} {event.step}"
    values = " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                      for k, v in event.values.items() if v is not None)
    return f"{step} {values}".strip()


def print_rejects(result: Any) -> None:
    """Rejected input rows (records, images: the source's ``unit``) are part of the run summary, with where to read
    them."""
    for node, node_result in result.nodes.items():
        for record in node_result.outputs.values():
            if record.type != "Rejects":
                continue
            props = record.open().properties
            if "count" in props:
                print(f"  {node}: {props['count']} of {props.get('rows_read', '?')} input {props.get('unit', 'rows')} "
                      "rejected"
                      + (f" (reasons in {record.uri}/rejects.jsonl)" if props["count"] else ""))


# the anomaly kinds the summary names first: a shifted or unseen distribution matters more than a new extreme
_VALIDATION_ORDER = ("missing_column", "type_change", "mean_drift", "new_category", "missing_values",
                     "unexpected_column", "out_of_range")
# kind -> its short text from the anomaly's ``measure`` (components/data/schema.py check_split); a null drift is
# an infinite one (train std 0)
_VALIDATION_SHORT = {
    "mean_drift": lambda m: "mean drift " + ("inf" if m["drift"] is None else f"{m['drift']:.3g}") + " train std",
    "new_category": lambda m: f"{m['unseen']} new categories ({m['share']:.2%})",
    "missing_values": lambda m: f"{m['fraction']:.2%} missing",
}


def print_validation(result: Any, shown: int = 3) -> None:
    """Anomalies of the data validation (``validation.json``) are part of the run summary: one line with their
    count, the splits checked, the first few named, and where to read them all. Silent data problems (a feature
    drifting 116 train standard deviations in test) must not need ``edgepipe show`` to be seen."""
    for record in (r for node in result.nodes.values() for r in node.outputs.values()):
        if record.type != "ValidationReport":
            continue
        path = Path(record.uri) / "validation.json"
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        anomalies = sorted(doc.get("anomalies") or [], key=lambda a: _VALIDATION_ORDER.index(a.get("kind"))
                           if a.get("kind") in _VALIDATION_ORDER else len(_VALIDATION_ORDER))
        if not anomalies:
            continue
        named = ", ".join(_short_anomaly(a) for a in anomalies[:shown]) + (", ..." if len(anomalies) > shown else "")
        count = f"{len(anomalies)} anomal{'y' if len(anomalies) == 1 else 'ies'}"
        print(f"  validation: {count} in {'/'.join(doc.get('checked') or [])} ({named}); see {path}")


def _short_anomaly(anomaly: dict) -> str:
    feature, kind, split = anomaly.get("feature"), anomaly.get("kind", ""), anomaly.get("split")
    short, measure = _VALIDATION_SHORT.get(kind), anomaly.get("measure")
    if short is None or not measure:  # a kind without numbers, or a validation.json written before measures
        return f"{feature} {kind.replace('_', ' ')} in {split}"
    return f"{feature} {short(measure)} in {split}"


def print_summary(bundle_dir: Path) -> None:
    from edgepipe.components.evaluation.metrics import shown_precision

    meta_file = bundle_dir / "bundle.json"
    if not meta_file.exists():
        return
    meta = json.loads(meta_file.read_text())
    primary = meta.get("primary_variant")
    for model, splits in (meta.get("metrics", {}).get("per_model") or {}).items():
        values = splits.get("all", {})
        pooled = "+".join(s for s in splits if s != "all") or "eval+test"  # the splits "all" pooled: eval alone
        if model == "int8" and primary:
            model = f"int8 ({primary}, model.tflite)"
        if "f1" in values:
            print(f"  {model:<8} precision {number(shown_precision(values))}  recall {number(values.get('recall'))}  "
                  f"F1 {number(values.get('f1'))}  ({pooled} windows)")
    agreement = (meta.get("metrics", {}).get("agreement_with_keras") or {}).get("int8")
    if isinstance(agreement, dict) and "decisive" in agreement:  # the anomaly gate's three agreement numbers
        print(f"  int8 vs Keras: decisions agree {number(agreement.get('all'))}, clear decisions "
              f"{number(agreement.get('decisive'))} (gated), score rank correlation "
              f"{number(agreement.get('score_correlation'))}")
    if meta.get("metrics", {}).get("metric_gate"):
        print(f"  metric gate {meta['metrics']['metric_gate']}")
    reason = meta.get("primary_reason") or (meta.get("quantization") or {}).get("reason")
    if reason:
        print(f"  model.tflite is '{primary}': {reason}")
    blessing = meta.get("blessing")
    if blessing:  # a retrain: against what it was judged, or why it was not (a "not compared" ships unjudged)
        versus = (f"{blessing.get('metric_name')} {number(blessing.get('candidate_metric'))} vs the baseline's "
                  f"{number(blessing.get('baseline_metric'))}: " if blessing.get("baseline_bundle") else "")
        print(f"  retrain: blessed, {versus}{blessing.get('reason')}")


def number(value: Any) -> str:
    """A metric for the summary; None (no positives in a split, no labels) is 'n/a', never a format error."""
    return "n/a" if value is None else f"{value:.3f}"
