"""Load-test ``edgepipe serve`` on loopback: a bounded number of concurrent POST /predict requests.

Starts the server in a subprocess (``python -m edgepipe.runtime serve BUNDLE --port P``) as a deployment would, waits
for /healthz, sends ``--requests`` requests from ``--concurrency`` client threads (one keep-alive connection each),
each a series of ``--steps`` raw samples, stops the server, and prints one JSON line:

    {"requests": 500, "concurrency": 8, "steps_per_request": 256, "requests_per_s": ..., "p50_ms": ...,
     "p99_ms": ..., "errors": 0}

Usage: python benchmarks/serve_load.py [BUNDLE] [--requests 500] [--concurrency 8] [--steps 256]
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}: {process.stderr.read()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not become healthy")


def body_for(bundle: Path, steps: int, seed: int) -> bytes:
    """A plausible raw series: per-channel normalization center + noise at the scale, from bundle.json."""
    meta = json.loads((bundle / "bundle.json").read_text())
    norm = meta["normalization"]
    rng = np.random.default_rng(seed)
    series = np.asarray(norm["center"]) + rng.normal(size=(steps, len(norm["center"]))) * np.asarray(norm["scale"])
    return json.dumps({"series": series.round(4).tolist()}).encode()


def worker(port: int, bodies: list[bytes]) -> tuple[list[float], int]:
    latencies, errors = [], 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for body in bodies:
        started = time.perf_counter()
        try:
            conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
            ok = response.status == 200 and b'"windows"' in payload
        except (OSError, http.client.HTTPException):
            ok = False
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies.append(time.perf_counter() - started)
        errors += not ok
    conn.close()
    return latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", nargs="?", default="bundle", help="bundle directory (default: ./bundle)")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--steps", type=int, default=256, help="samples per request (default: 256)")
    args = parser.parse_args()
    bundle = Path(args.bundle)
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen([sys.executable, "-m", "edgepipe.runtime", "serve", str(bundle), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_healthy(port, server)
        bodies = [body_for(bundle, args.steps, seed) for seed in range(16)]
        plan = [[bodies[(w + i * args.concurrency) % len(bodies)]
                 for i in range(len(range(w, args.requests, args.concurrency)))] for w in range(args.concurrency)]
        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(lambda b: worker(port, b), plan))
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    latencies = np.array([lat for lats, _ in results for lat in lats]) * 1000
    print(json.dumps({"requests": int(len(latencies)), "concurrency": args.concurrency,
                      "steps_per_request": args.steps, "requests_per_s": round(len(latencies) / elapsed, 1),
                      "p50_ms": round(float(np.percentile(latencies, 50)), 2),
                      "p99_ms": round(float(np.percentile(latencies, 99)), 2),
                      "errors": int(sum(e for _, e in results))}))


if __name__ == "__main__":
    main()
