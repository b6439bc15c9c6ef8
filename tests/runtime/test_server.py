"""``edgepipe serve`` over a real socket on 127.0.0.1: endpoints, request validation, body limit, concurrency.

The server runs in a background thread (``server.running``: free port, stops when the block exits); requests go
through ``http.client`` with timeouts, so nothing here can hang.
"""
from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import pytest

pytest.importorskip("fastapi", reason="the 'serve' extra (fastapi, uvicorn) is not installed")

from edgepipe.runtime import Bundle  # noqa: E402
from edgepipe.runtime.server import EXPANSION, LIMIT_CONCURRENCY, running  # noqa: E402
from tests.runtime.fixtures import REPO, default_run, raw_series  # noqa: E402

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return default_run(tmp_path_factory)


@pytest.fixture(scope="module")
def bundle(run):
    return Bundle.load(run.bundle, concurrency=2)


@pytest.fixture(scope="module")
def server(bundle):
    with running(bundle, max_body_bytes=LIMIT) as url:
        parsed = urlparse(url)
        yield parsed.hostname, parsed.port


def request(server, method, path, body=None, headers=None, raw: bytes | None = None):
    conn = http.client.HTTPConnection(*server, timeout=10)
    try:
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn.request(method, path, body=payload, headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else None
    finally:
        conn.close()


def test_healthz_and_metadata(server):
    assert request(server, "GET", "/healthz") == (200, {"status": "ok", "task": "anomaly_detection",
                                                       "model": "model.tflite"})
    status, meta = request(server, "GET", "/metadata")
    assert status == 200 and meta["channel_names"] == ["vibration", "temperature", "current"]
    assert meta["window_size"] == 32 and meta["input"]["dtype"] == "int8" and meta["threshold"] > 0


def test_predict_series_equals_the_library(server, bundle):
    series = raw_series("m2")[:202]  # 202 = 32 + 42 * 4 + 2: the last two steps are in no window
    status, body = request(server, "POST", "/predict", {"series": series.tolist()})
    expected = bundle.predict(series)
    assert status == 200
    assert body["windows"]["score"] == expected.window_score.tolist()
    assert body["windows"]["start"] == expected.window_start.tolist()
    assert body["steps"]["anomaly"] == expected.step_anomaly.tolist()
    assert body["steps"]["score"][-2:] == [None, None] and None not in body["steps"]["score"][:-2]
    assert body["steps"]["score"][:-2] == expected.step_score[:-2].tolist()
    # the causal likelihood and alert onsets (runtime/likelihood.py): null before the first window ends
    assert body["steps"]["likelihood"][:31] == [None] * 31 and body["steps"]["likelihood"][31:] == \
        expected.step_likelihood[31:].tolist()
    assert body["windows"]["likelihood"] == expected.window_likelihood.tolist()
    assert body["steps"]["alert"] == expected.step_alert.tolist() and body["alerts"] == expected.alerts()
    assert body["likelihood"] == expected.likelihood.to_dict()


def test_predict_takes_alert_parameters_from_the_query(server, bundle):
    series = raw_series("m2")[:202]
    status, body = request(server, "POST", "/predict?threshold=0.5&refractory=0", {"series": series.tolist()})
    expected = bundle.predict(series, threshold=0.5, refractory=0)
    assert status == 200 and body["alerts"] == expected.alerts()
    assert body["likelihood"]["threshold"] == 0.5 and body["likelihood"]["refractory"] == 0
    status, body = request(server, "POST", "/predict?threshold=high", {"series": series.tolist()})
    assert status == 400 and body["error"] == "query parameter 'threshold': not a number: 'high'"
    status, body = request(server, "POST", "/predict?threshold=2", {"series": series.tolist()})
    assert status == 400 and body["error"] == ("query parameter(s) threshold: likelihood: threshold must be in "
                                               "(0, 1], got 2.0")
    status, body = request(server, "POST", "/predict?refractory=-1", {"series": series.tolist()})
    assert status == 400 and "refractory must be >= 0, got -1" in body["error"]
    status, body = request(server, "POST", "/predict?treshold=0.5", {"series": series.tolist()})  # misspelt
    assert status == 400 and body["error"] == "unknown query parameter(s) treshold (known: threshold, refractory)"


def test_predict_windows(server, bundle):
    series = raw_series("m1")[:36]
    status, body = request(server, "POST", "/predict", {"windows": [series[:32].tolist(), series[4:].tolist()]})
    assert status == 200 and "steps" not in body and body["windows"]["index"] == [0, 1]
    assert body["windows"]["score"] == bundle.predict(series).window_score.tolist()


@pytest.mark.parametrize("body, status, message", [
    ({"series": [[1.0, 2.0]] * 40}, 422, "series: 2 channels, the bundle expects 3 (vibration, temperature, current)"),
    ({"series": [[1.0, "2", 3.0]] * 40}, 422, 'series[0][1]: not a number: "2"'),
    ({"series": [[1.0, True, 3.0]] * 40}, 422, "series[0][1]: not a number: true"),
    ({"series": [[1.0, None, 3.0]] * 40}, 422, "series[0][1]: not a number: null"),
    ({"series": [[1.0, 2.0, 3.0]] * 31}, 422, "series: 31 steps, fewer than one window (32 steps)"),
    ({"series": []}, 422, "series: empty list"),
    ({"series": [[1.0, 2.0, 3.0], [1.0, 2.0]]}, 422, "series[1]: has 2 values, series[0] has 3 values"),
    ({"windows": [[[1.0, 2.0, 3.0]] * 16]}, 422, "windows: expected shape [n, 32, 3], got [1, 16, 3]"),
    ({"series": [[1, 2, 3]] * 40, "windows": []}, 400, "exactly one of: series, windows"),
    ({"rows": [[1, 2, 3]]}, 400, "unknown key(s) rows"),
    ([[1, 2, 3]], 400, "body must be a JSON object"),
])
def test_invalid_requests_get_a_clear_4xx(server, body, status, message):
    got, payload = request(server, "POST", "/predict", body)
    assert got == status and message in payload["error"], payload


def test_malformed_empty_and_non_finite_bodies(server):
    assert request(server, "POST", "/predict", raw=b"{nope")[0] == 400
    status, payload = request(server, "POST", "/predict", raw=b"")
    assert status == 400 and "empty body" in payload["error"]
    status, payload = request(server, "POST", "/predict", raw=b'{"series": [[NaN, 1, 2]]}')
    assert status == 422 and "non-finite" in payload["error"]


def test_bodies_over_the_limit_get_413_declared_or_chunked(server):
    big = json.dumps({"series": [[1.0, 2.0, 3.0]] * 5000}).encode()
    assert len(big) > LIMIT
    status, payload = request(server, "POST", "/predict", raw=big)
    assert status == 413 and f"limit of {LIMIT} bytes" in payload["error"]
    conn = http.client.HTTPConnection(*server, timeout=10)  # no Content-Length: counted while streaming
    try:
        conn.request("POST", "/predict", body=iter([big[i:i + 8192] for i in range(0, len(big), 8192)]),
                     headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
                     encode_chunked=True)
        assert conn.getresponse().status == 413
    finally:
        conn.close()
    assert request(server, "GET", "/healthz")[0] == 200  # still serving


def test_concurrent_requests_all_succeed_with_correct_answers(server, bundle):
    cases = [raw_series(m)[i * 50:i * 50 + 100] for m in ("m1", "m2", "m3") for i in range(4)]
    expected = [bundle.predict(c).window_score.tolist() for c in cases]

    def call(i):
        status, body = request(server, "POST", "/predict", {"series": cases[i % len(cases)].tolist()})
        return i, status, body["windows"]["score"] if status == 200 else body

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(96)))
    assert all(status == 200 for _, status, _ in results)
    assert all(scores == expected[i % len(cases)] for i, _, scores in results)


def test_serve_load_benchmark_prints_one_json_line(run):
    result = subprocess.run([sys.executable, "benchmarks/serve_load.py", str(run.bundle), "--requests", "40",
                             "--concurrency", "4", "--steps", "64", "--memory-bodies", "2", "--body-bytes", "200000",
                             "--health-clients", "8", "--health-probes", "3"], cwd=REPO, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    numbers = json.loads(line)
    assert numbers["requests"] == 40 and numbers["errors"] == 0
    assert numbers["requests_per_s"] > 0 and 0 < numbers["p50_ms"] <= numbers["p99_ms"]
    memory = numbers["memory"]
    assert memory["bodies"] == 2 and 190_000 < memory["body_bytes"] <= 200_000 and memory["statuses"] == {"200": 2}
    assert 0 < memory["idle_rss_mb"] <= memory["peak_rss_mb"]
    assert numbers["health"]["clients"] == 8 and numbers["health"]["healthz"] == {"200": 3}


def test_serve_refuses_a_bad_bundle_with_exit_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "edgepipe", "serve", str(tmp_path), "--port", "0"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.strip() == f"edgepipe: error: {tmp_path}: no bundle.json " \
                                                              "(not an exported bundle)"


def open_held_post(address, declared: int, sent: bytes = b"") -> socket.socket:
    """A POST /predict whose body is only partly sent: the server admits it and waits for the rest."""
    sock = socket.create_connection(address, timeout=10)
    sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % declared + sent)
    return sock


def until(condition, what: str, tries: int = 200):
    """Poll ``condition`` (a request) until it holds: waits for a server-side state, not for a duration."""
    for _ in range(tries):
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"never saw {what}")


def test_healthz_answers_200_while_the_request_limit_is_full(bundle):
    """100 clients hold requests open (more than the 64-request limit): /predict is refused with 503 +
    Retry-After, /healthz still answers 200 (uvicorn's own limit used to answer 503 to health checks too)."""
    with running(bundle, max_body_bytes=LIMIT) as url:
        address = (urlparse(url).hostname, urlparse(url).port)
        held = [open_held_post(address, 100, b"{") for _ in range(LIMIT_CONCURRENCY + 36)]
        try:
            def refused():
                conn = http.client.HTTPConnection(*address, timeout=10)
                try:
                    conn.request("POST", "/predict", body=json.dumps({"series": [[1.0, 2.0, 3.0]] * 40}))
                    response = conn.getresponse()
                    response.read()
                    return response if response.status == 503 else None
                finally:
                    conn.close()

            busy = until(refused, "the request limit fill up")
            assert busy.getheader("Retry-After") == "1"
            for _ in range(5):
                assert request(address, "GET", "/healthz")[0] == 200
        finally:
            for sock in held:
                sock.close()
        until(lambda: request(address, "GET", "/metadata")[0] == 200, "the server recover")


def test_a_full_memory_budget_answers_503_with_retry_after_then_recovers(bundle):
    """One admitted body reserves the whole budget (EXPANSION x its declared size); while it is in flight the next
    request is refused (503, Retry-After) after its wait, and served once the first one is done."""
    series = raw_series("m1")[:100].tolist()
    first = json.dumps({"series": series}).encode()
    with running(bundle, max_body_bytes=LIMIT, max_memory=EXPANSION * len(first), admission_wait_s=0) as url:
        address = (urlparse(url).hostname, urlparse(url).port)
        sock = open_held_post(address, len(first), first[:10])
        try:
            def refused():
                conn = http.client.HTTPConnection(*address, timeout=10)
                try:
                    conn.request("POST", "/predict", body=json.dumps({"series": series[:40]}))
                    response = conn.getresponse()
                    payload = response.read()
                    return (response, json.loads(payload)) if response.status == 503 else None
                finally:
                    conn.close()

            response, payload = until(refused, "the budget fill up")
            assert response.getheader("Retry-After") == "1" and "memory budget" in payload["error"]
            assert request(address, "GET", "/healthz")[0] == 200
            sock.sendall(first[10:])  # the first request completes and frees its reservation
            reply = sock.makefile("rb").readline()
            assert reply.startswith(b"HTTP/1.1 200"), reply
        finally:
            sock.close()
        assert request(address, "POST", "/predict", {"series": series[:40]})[0] == 200


def test_serve_refuses_a_memory_budget_below_one_body_with_exit_2(tmp_path):
    budget = EXPANSION * 1000 - 1
    result = subprocess.run([sys.executable, "-m", "edgepipe", "serve", str(tmp_path), "--port", "0",
                             "--max-body-bytes", "1000", "--max-memory", str(budget)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    [line] = result.stderr.strip().splitlines()
    assert result.returncode == 2 and f"--max-memory {budget} is below one max-size body's estimated" in line
