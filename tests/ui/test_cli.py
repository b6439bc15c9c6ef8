"""``edgepipe ui`` as a user starts it: a loopback address needs nothing, any other gets a printed token that every
request must carry; bad arguments are one ``edgepipe: error:`` line (exit 2)."""
from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def start(*args: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "edgepipe", "ui", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "open http" in line:
            return process, "".join(lines)
    process.kill()
    pytest.fail("edgepipe ui did not start: " + "".join(lines))


def stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    pytest.fail(f"nothing listens on port {port}")


def test_non_loopback_address_requires_the_printed_token(ui_fixture):
    port = free_port()
    process, banner = start("--root", str(ui_fixture.root), "--host", "0.0.0.0", "--port", str(port),
                            "--configs", str(ui_fixture.configs))
    try:
        token = re.search(r"\?token=([\w-]+)", banner).group(1)
        assert len(token) >= 24 and "token is required" in banner
        wait_listening(port)
        assert get(f"http://127.0.0.1:{port}/api/runs")[0] == 401
        assert get(f"http://127.0.0.1:{port}/", "not-the-token")[0] == 401
        code, body = get(f"http://127.0.0.1:{port}/api/runs", token)
        assert code == 200 and ui_fixture.first in {r["id"] for r in json.loads(body)["runs"]}
    finally:
        stop(process)


def test_loopback_needs_no_token(ui_fixture):
    port = free_port()
    process, banner = start("--root", str(ui_fixture.root), "--port", str(port))
    try:
        assert "token" not in banner and f"http://127.0.0.1:{port}/" in banner
        wait_listening(port)
        code, body = get(f"http://127.0.0.1:{port}/")
        assert code == 200 and ui_fixture.second in body
    finally:
        stop(process)


@pytest.mark.parametrize("args, message", [
    (["--configs", "/no/such/dir"], "--configs /no/such/dir: not a directory"),
    (["--port", "70000"], "port"),
])
def test_bad_arguments_are_one_line(args, message, tmp_path):
    done = subprocess.run([sys.executable, "-m", "edgepipe", "ui", "--root", str(tmp_path / "r"), *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgepipe: error:") and message in lines[0]


def test_root_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "root").write_text("not a directory")
    done = subprocess.run([sys.executable, "-m", "edgepipe", "ui", "--root", str(tmp_path / "root")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip() == \
        f"edgepipe: error: pipeline root {tmp_path / 'root'} is a file, not a directory (--root)"


def test_a_missing_root_given_with_root_is_refused_not_created(tmp_path):
    """runs/show refuse a root that is not there; ui created it and showed an empty UI for a misspelt path."""
    missing = tmp_path / "no-such-root"
    done = subprocess.run([sys.executable, "-m", "edgepipe", "ui", "--root", str(missing)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip() == (
        f"edgepipe: error: no pipeline root at '{missing}' (no such directory); run 'edgepipe run --root {missing}' "
        "first, or leave --root out to use .edgepipe")
    assert not missing.exists()


def test_a_port_in_use_is_one_line_and_no_url_is_printed(tmp_path):
    """QA23 U13: the socket is bound before the "open" line, so a busy port prints no URL (it would be the other
    process's UI) and is refused in one line with exit 2, not uvicorn's ERROR line and exit 3."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "edgepipe", "ui", "--root", str(tmp_path), "--port", str(port)],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"edgepipe: error: port {port} on 127.0.0.1 is in use (another edgepipe ui?); "
                                   "pick --port")
    assert "open http" not in done.stdout
