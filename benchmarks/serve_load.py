"""Load-test ``edgepipe serve`` on loopback: a bounded number of concurrent POST /predict requests.

Starts the server in a subprocess (``python -m edgepipe.runtime serve BUNDLE --port P``) as a deployment would, waits
for /healthz, sends ``--requests`` requests from ``--concurrency`` client threads (one keep-alive connection each),
each a series of ``--steps`` raw samples. Then two bounded-memory checks (issue 12):

* ``memory``: ``--memory-bodies`` (8) concurrent bodies of ``--body-bytes`` (the default 8 MiB limit) each; the
  server's peak RSS is its kernel high-water mark (``VmHWM``) read after them, with the status of each answer (200,
  or 503 + Retry-After when the ``--max-memory`` budget turns it away).
* ``health``: ``--health-clients`` (100) clients keep POSTing while /healthz is asked ``--health-probes`` times;
  every probe should get 200 (health bypasses the request limiter).

It stops the server and prints one JSON line:

    {"requests": 500, "concurrency": 8, "steps_per_request": 256, "requests_per_s": ..., "p50_ms": ...,
     "p99_ms": ..., "errors": 0, "memory": {"bodies": 8, "body_bytes": ..., "idle_rss_mb": ..., "peak_rss_mb": ...,
     "statuses": {"200": 8}}, "health": {"clients": 100, "healthz": {"200": 20}, "predict": {"200": ..., "503": ...}}}

Usage: python benchmarks/serve_load.py [BUNDLE] [--requests 500] [--concurrency 8] [--steps 256]
       [--memory-bodies 8] [--body-bytes 8388608] [--health-clients 100] [--server-arg=--max-memory=...]
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
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


def body_of_size(bundle: Path, size: int) -> bytes:
    """A series body as close to ``size`` bytes as possible without exceeding it (a max-size request)."""
    sample = body_for(bundle, 1024, 0)
    steps = max(1, int(1024 * size / len(sample)))
    body = body_for(bundle, steps, 0)
    while len(body) > size:
        steps = int(steps * size / len(body) * 0.999)
        body = body_for(bundle, steps, 0)
    return body


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def post(port: int, body: bytes, timeout: float = 120) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return 0  # connection refused/reset: counted as status 0
    finally:
        conn.close()


def memory_check(port: int, pid: int, body: bytes, bodies: int) -> dict:
    """``bodies`` concurrent max-size POSTs; the server's high-water RSS afterwards."""
    idle = rss_kib(pid, "VmRSS")
    with ThreadPoolExecutor(bodies) as pool:
        statuses = list(pool.map(lambda _: post(port, body), range(bodies)))
    return {"bodies": bodies, "body_bytes": len(body), "idle_rss_mb": round(idle / 1024, 1),
            "peak_rss_mb": round(rss_kib(pid, "VmHWM") / 1024, 1),
            "statuses": {str(k): v for k, v in sorted(Counter(statuses).items())}}


def health_check(port: int, body: bytes, clients: int, probes: int) -> dict:
    """``clients`` threads POST in a loop while /healthz is probed; statuses of both."""
    stop, predict = threading.Event(), Counter()
    lock = threading.Lock()

    def client() -> None:
        while not stop.is_set():
            status = post(port, body, timeout=30)
            with lock:
                predict[status] += 1

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # let every client connect and the server saturate
    health = Counter()
    for _ in range(probes):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            health[response.status] += 1
        except (OSError, http.client.HTTPException):
            health[0] += 1
        finally:
            conn.close()
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    return {"clients": clients, "healthz": {str(k): v for k, v in sorted(health.items())},
            "predict": {str(k): v for k, v in sorted(predict.items())}}


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
    parser.add_argument("--memory-bodies", type=int, default=8, help="concurrent max-size bodies (0: skip)")
    parser.add_argument("--body-bytes", type=int, default=8 * 1024 * 1024, help="size of each (default: 8 MiB)")
    parser.add_argument("--health-clients", type=int, default=100, help="clients during /healthz probes (0: skip)")
    parser.add_argument("--health-probes", type=int, default=20)
    parser.add_argument("--server-arg", action="append", default=[], help="extra 'serve' argument (repeatable)")
    args = parser.parse_args()
    bundle = Path(args.bundle)
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen([sys.executable, "-m", "edgepipe.runtime", "serve", str(bundle), "--port", str(port),
                               "--max-body-bytes", str(max(args.body_bytes, 8 * 1024 * 1024)), *args.server_arg],
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
        extra = {}
        if args.memory_bodies > 0:
            extra["memory"] = memory_check(port, server.pid, body_of_size(bundle, args.body_bytes), args.memory_bodies)
        if args.health_clients > 0:
            extra["health"] = health_check(port, body_for(bundle, 4096, 1), args.health_clients, args.health_probes)
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
                      "errors": int(sum(e for _, e in results)), **extra}))


if __name__ == "__main__":
    main()
