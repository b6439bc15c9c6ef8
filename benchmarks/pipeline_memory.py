"""Peak memory of the default pipeline on a large sensor CSV, per component.

Why this exists: window tensors grow with the input (a 200 MB CSV at stride 4 holds ~1.2M windows), and a
component that materialises every window as NumPy, then copies it again for Keras, peaks at many times the data.
This script writes a ``--mb``-sized 3-channel CSV into a temp dir (the embedded generator's 4-week blocks,
``edgepipe.data.generate``, repeated with successive seeds and continued in time, so 3 long series with labelled
anomalies), runs ``edgepipe run`` on it in a subprocess, samples the RSS of that process tree every
``--interval`` s, and attributes each sample to the component running at that moment (start/end times from the
run's metadata store). It prints one JSON line:

    {"csv_mb": 50.0, "rows": ..., "overrides": [...], "peak_rss_mb": ..., "wall_s": ...,
     "components": {"train": {"peak_rss_mb": ..., "seconds": ...}, "evaluate": {...}, ...}}

``peak_rss_mb`` is the kernel's high-water mark of the run's process (``RUSAGE_CHILDREN``), exact; the per-component
peaks come from sampling, so a spike shorter than the interval can be missed (they are lower bounds).
Training length does not change the peak (the data does), so ``--set training.epochs=2`` keeps a large run short.

Usage: python benchmarks/pipeline_memory.py [--mb 50] [--interval 0.1] [--keep DIR] [--set key=value ...]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def write_csv(path: Path, megabytes: float) -> int:
    """Write about ``megabytes`` MB of generator blocks (3 machines each); returns the number of data rows."""
    from edgepipe.data.generate import CHANNELS, STEP_SECONDS, STEPS, generate

    blocks = max(1, round(megabytes * 1e6 / 573_000))  # one block (3 machines x 4 weeks) is ~0.573 MB of CSV
    rows = 0
    per_machine: dict[str, list[tuple]] = {}
    for block in range(blocks):
        series, _ = generate(seed=7 + block)
        offset = np.timedelta64(block * STEPS * STEP_SECONDS, "s")
        for machine, stamps, values, labels in series:
            per_machine.setdefault(machine, []).append((stamps + offset, values, labels))
    with path.open("w") as out:
        out.write(f"machine,timestamp,{','.join(CHANNELS)},anomaly\n")
        for machine, parts in per_machine.items():
            for stamps, values, labels in parts:
                text = np.datetime_as_string(stamps, unit="s")
                out.writelines(f"{machine},{t},{v[0]:.4f},{v[1]:.4f},{v[2]:.4f},{a}\n"
                               for t, v, a in zip(text, values, labels))
                rows += len(labels)
    return rows


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        stack.extend(children.get(current, []))
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


def sample(pid: int, interval: float, samples: list[tuple[float, int]], stop: threading.Event) -> None:
    while not stop.is_set():
        samples.append((time.time(), tree_rss(pid)))
        stop.wait(interval)


def per_component(root: Path, samples: list[tuple[float, int]]) -> dict[str, dict]:
    from edgepipe.pipeline.metadata import MetadataStore

    store = MetadataStore(root / "metadata.sqlite")
    run = store.runs(1)[0]
    result = {}
    for execution in store.executions(run["id"]):
        start, end = execution["started"], execution["ended"] or time.time()
        inside = [rss for t, rss in samples if start <= t <= end]
        result[execution["node"]] = {"peak_rss_mb": round(max(inside) / 2**20, 1) if inside else None,
                                     "seconds": round(end - start, 1), "cached": bool(execution["cached"])}
    store.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50.0, help="CSV size in MB (default: 50)")
    parser.add_argument("--interval", type=float, default=0.1, help="RSS sampling interval in seconds")
    parser.add_argument("--keep", help="write the CSV and pipeline root here instead of a temp dir")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        csv_path = work / "sensors.csv"
        rows = write_csv(csv_path, args.mb)
        root, output = work / "root", work / "bundle"
        cmd = [sys.executable, "-m", "edgepipe", "run", "--root", str(root), "--output", str(output), "--no-cache",
               "--set", f"data.source={csv_path}"]
        for override in args.overrides:
            cmd += ["--set", override]
        samples: list[tuple[float, int]] = []
        stop = threading.Event()
        started = time.perf_counter()
        process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        sampler = threading.Thread(target=sample, args=(process.pid, args.interval, samples, stop), daemon=True)
        sampler.start()
        _, stderr = process.communicate()
        stop.set()
        sampler.join()
        wall = time.perf_counter() - started
        if process.returncode != 0:
            raise SystemExit(f"edgepipe run exited {process.returncode}: {stderr.strip()[-2000:]}")
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
        print(json.dumps({"csv_mb": round(csv_path.stat().st_size / 1e6, 1), "rows": rows,
                          "overrides": args.overrides, "peak_rss_mb": round(peak / 2**20, 1),
                          "wall_s": round(wall, 1), "components": per_component(root, samples)}))


if __name__ == "__main__":
    main()
