"""Issue 12: every way a user can hit the CLI wrong ends as ONE line on stderr and a meaningful exit code, never a
traceback, and leaves a root the next run can use.

Each case runs ``python -m edgepipe`` in a subprocess (what a user sees, interpreter exit included). Cases that
fail when the config is read cost an interpreter start; the data cases stop within the first four components; the
disk cases mount a small tmpfs (root only, skipped otherwise). The runtime cases share one small pipeline run.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.runtime.fixtures import SENSORS, SMALL, default_run

REPO = Path(__file__).resolve().parents[2]
FAST = ["training.epochs=1", "prune.epochs=1", "qat.epochs=1", "window.size=16"]


def cli(*args: str, timeout: int = 300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgepipe", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def sets(overrides: list[str]) -> list[str]:
    return [arg for override in overrides for arg in ("--set", override)]


def one_line(result: subprocess.CompletedProcess, code: int, pattern: str) -> str:
    """The run exited with ``code`` and said exactly one ``edgepipe: error:`` line on stderr matching ``pattern``."""
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith("edgepipe: error: "), lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    assert result.returncode == code, (result.returncode, lines[0])
    return lines[0]


def short_csv(path: Path, rows: int, bad_value: str | None = None) -> Path:
    """The first ``rows`` rows of machine m1 of the embedded data; ``bad_value`` replaces one vibration cell."""
    lines = SENSORS.read_text().splitlines()
    body = [line for line in lines[1:] if line.startswith("m1,")][:rows]
    if bad_value is not None:
        cells = body[5].split(",")
        cells[2] = bad_value
        body[5] = ",".join(cells)
    path.write_text("\n".join([lines[0], *body]) + "\n")
    return path


# ---- config decided: exit 2 before anything runs ----------------------------------------------------------------
CONFIG_CASES = {
    "family the template does not train": (
        ["--set", "model.family=cnn"], r"'model\.family': template 'anomaly_detection' trains autoencoder, not 'cnn'"),
    "key the template does not read": (
        ["--set", "training.patience=3", "--set", "model.hparams={units: 4}"],
        r"config keys 'model\.hparams', 'training\.patience' are not used by template 'anomaly_detection'"),
    "no split to evaluate on": (
        ["--set", "data.split={train: 1.0}"], r"'data\.split' is \{'train': 1\.0\}: template 'anomaly_detection' "
                                              r"evaluates .* on split 'eval' or 'test'"),
}


@pytest.mark.parametrize("args, pattern", CONFIG_CASES.values(), ids=CONFIG_CASES.keys())
def test_config_errors_refused_before_running(tmp_path, args, pattern):
    # FAST: the code before the fix ran these to the end (exit 0, or exit 4 after the whole run)
    result = cli("run", "--root", tmp_path / "root", "--output", tmp_path / "bundle", *args, *sets(FAST))
    one_line(result, 2, pattern)
    assert not (tmp_path / "root" / "metadata.sqlite").exists()  # nothing ran


def test_verbose_flag_after_the_subcommand(tmp_path):
    """``edgepipe run -v`` as the README writes it (-v shows framework logs, so only the last line is ours)."""
    result = cli("run", "-v", "--root", tmp_path / "root", "--set", "model.family=cnn")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith("trains autoencoder, not 'cnn'")
    one_line(cli("runs", "--root", tmp_path / "nowhere", "-v"), 2, r"no pipeline root")
    one_line(cli("predict", "-v", tmp_path / "nowhere", SENSORS), 2, r"nowhere: does not exist")


def test_duplicate_yaml_key_names_file_line_and_key(tmp_path):
    config = tmp_path / "dup.yaml"
    config.write_text("window:\n  size: 16\n  stride: 2\n  size: 32\ntraining: {epochs: 1}\n")
    one_line(cli("run", config, "--root", tmp_path / "root"), 2,
             re.escape(f"{config} line 4: duplicate key 'size' (first given on line 2)"))


def test_root_naming_a_file(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    one_line(cli("run", "--root", not_a_dir, "--output", tmp_path / "b"), 2, r"root .*file is a file, not a directory")
    one_line(cli("runs", "--root", not_a_dir), 2, r"is a file, not a directory")
    assert not_a_dir.read_text() == "x"


def test_corrupt_metadata_store_is_named(tmp_path):
    (tmp_path / "metadata.sqlite").write_text("garbage\n")
    for command in (["runs"], ["show", "latest"]):
        one_line(cli(*command, "--root", tmp_path), 3, re.escape(f"{tmp_path / 'metadata.sqlite'}: not a usable "
                                                                 "metadata store (file is not a database)"))
    assert (tmp_path / "metadata.sqlite").read_text() == "garbage\n"  # the user's file is left as it was


def test_runs_into_a_closed_pipe_exits_quietly(tmp_path):
    from edgepipe.pipeline.metadata import MetadataStore

    store = MetadataStore(tmp_path / "metadata.sqlite")
    for _ in range(3000):  # ~300 KB of listing: far more than a pipe buffer, so the writer meets the closed pipe
        store.start_run("default", {})
    result = subprocess.run(f"{sys.executable} -m edgepipe runs --root {tmp_path} --limit 3000 | head -1",
                            shell=True, cwd=REPO, capture_output=True, text=True, timeout=120,
                            executable="/bin/bash")
    assert result.stdout.startswith("RUN ")
    assert result.stderr == ""


@pytest.mark.parametrize("args, pattern", [
    (["runs", "--limit", "-1"], r"runs: argument --limit: must be >= 1, got -1"),
    (["serve", "BUNDLE", "--port", "99999"], r"serve: argument --port: must be 0-65535, got 99999"),
    (["predict", "BUNDLE", "x.csv", "--threads", "-3"], r"predict: argument --threads: must be >= 1, got -3"),
    (["serve", "BUNDLE", "--concurrency", "0"], r"argument --concurrency: must be >= 1"),
])
def test_bad_arguments_blame_the_argument(args, pattern):
    one_line(cli(*args), 2, pattern)


# ---- data decided: exit 3 within the first components -----------------------------------------------------------
def test_series_shorter_than_a_window_names_series_and_length(tmp_path):
    data = short_csv(tmp_path / "short.csv", 20)
    result = cli("run", "--root", tmp_path / "root", "--output", tmp_path / "b",
                 *sets([f"data.source={data}", "window.size=64", *FAST[:3]]))
    one_line(result, 3, r"make_windows' failed: series 'm1' has 12 steps in split 'train', fewer than window\.size 64")
    assert "train_autoencoder" not in result.stdout  # stopped before training


def test_value_beyond_float32_is_a_rejected_row(tmp_path):
    data = short_csv(tmp_path / "huge.csv", 200, bad_value="1e308")
    result = cli("run", "--root", tmp_path / "root", "--output", tmp_path / "b",
                 *sets([f"data.source={data}", "data.max_reject_fraction=0.0", *FAST]))
    one_line(result, 3, r"ingest_timeseries' failed: 1 of 200 rows rejected .*huge\.csv:7: value out of float32 "
                        r"range in column 'vibration': '1e308'")


def test_directory_as_data_source(tmp_path):
    (tmp_path / "data").mkdir()
    one_line(cli("run", "--root", tmp_path / "root", "--output", tmp_path / "b", "--set",
                 f"data.source={tmp_path / 'data'}"), 3, r"is a directory, not a file")


# ---- the disk refuses: exit 1, one line, a root the next run can use --------------------------------------------
@pytest.fixture
def tmpfs(tmp_path):
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = []

    def mount(name: str, size: str, options: str = "") -> Path:
        point = tmp_path / name
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}{options}", "tmpfs", str(point)],
                              capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_root_on_a_full_disk(tmpfs):
    disk = tmpfs("disk", "1200k")  # ingest .. make_windows fit, the trained model does not
    result = cli("run", "--root", disk / "root", "--output", disk.parent / "bundle", *sets(FAST))
    one_line(result, 1, r"no space left on device writing " + re.escape(str(disk / "root")))
    listing = cli("runs", "--root", disk / "root")  # the store is intact and readable
    assert listing.returncode == 0 and "default" in listing.stdout, listing.stderr
    assert not list((disk / "root").glob("failed/*/*"))  # no half-written outputs kept to fill the disk


SAVE_MODEL = """
import sys
import edgepipe
import tf_keras as keras
from edgepipe.pipeline.artifacts import Model
net = keras.Sequential([keras.layers.Input((64,)), keras.layers.Dense(256), keras.layers.Dense(64)])
target = Model(sys.argv[1])
target.path.mkdir(parents=True)
try:
    target.save_keras(net)
except OSError as err:
    print("errno", err.errno)
"""


def test_model_save_on_a_full_disk_fails_once_without_crashing(tmpfs):
    """HDF5 writing straight to a full disk printed errno 28 lines by the hundred, then segfaulted (exit 139)."""
    disk = tmpfs("small", "64k")  # the model's HDF5 file is ~330 KB
    result = subprocess.run([sys.executable, "-c", SAVE_MODEL, str(disk / "model")], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "errno 28"
    assert "errno = 28" not in result.stderr


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return default_run(tmp_path_factory)


@pytest.mark.parametrize("options, pattern", [
    ("", r"could not write the bundle to .*: no space left on device"),
    (",ro", r"could not write the bundle to .*: read-only file system"),
])
def test_bundle_copy_to_a_full_or_read_only_output(run, tmpfs, options, pattern):
    disk = tmpfs("out", "64k", options)
    result = cli("run", "--root", run.root, "--output", disk / "bundle", *sets(SMALL))  # every component cached
    one_line(result, 1, pattern)
    assert not list(disk.iterdir())  # no partial copy left filling the disk (nor the lock)


# ---- the runtime: predict / serve --------------------------------------------------------------------------------
def test_predict_output_on_a_full_disk(run, tmpfs):
    disk = tmpfs("predictions", "16k")  # the whole embedded CSV's windows are ~1 MB of JSON Lines
    one_line(cli("predict", run.bundle, SENSORS, "--series-column", "machine", "--output", disk / "out.jsonl"), 1,
             r"no space left on device writing .*out\.jsonl")
    runtime = subprocess.run([sys.executable, "-m", "edgepipe.runtime", "predict", str(run.bundle), str(SENSORS),
                              "--series-column", "machine", "--output", str(disk / "out.jsonl")], cwd=REPO,
                             capture_output=True, text=True, timeout=300)
    one_line(runtime, 1, r"no space left on device writing .*out\.jsonl")
    assert list(disk.iterdir()) == []  # no partial file left


def broken_bundle(run, tmp_path: Path, change) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(run.bundle, target)
    path = target / "bundle.json"
    path.write_text(change(path.read_text()))
    return target


def deep(n: int) -> str:
    return "[" * n + "]" * n


def test_predict_bundle_json_nested_deeply(run, tmp_path):
    bundle = broken_bundle(run, tmp_path, lambda text: text.rstrip()[:-1] + f', "x": {deep(100000)}}}')
    one_line(cli("predict", bundle, SENSORS), 2, r"bundle\.json: JSON nested too deeply")
    bundle = broken_bundle(run, tmp_path / "b", lambda text: text.rstrip()[:-1] + f', "x": {deep(500)}}}')
    one_line(cli("predict", bundle, SENSORS), 2, r"bundle\.json: JSON nested more than 32 levels deep")


def test_predict_bundle_normalization_beyond_float32(run, tmp_path):
    def change(text: str) -> str:
        doc = json.loads(text)
        doc["normalization"]["center"][0] = 1e308
        return json.dumps(doc)

    one_line(cli("predict", broken_bundle(run, tmp_path, change), SENSORS), 2,
             r"'normalization\.center\[0\]' must fit in float32")


def test_predict_json_input_nested_deeply(run, tmp_path):
    body = tmp_path / "deep.json"
    body.write_text('{"series": ' + deep(100000) + "}")
    one_line(cli("predict", run.bundle, body), 3, r"deep\.json: JSON nested too deeply")


def test_predict_csv_value_beyond_float32(run, tmp_path):
    data = short_csv(tmp_path / "huge.csv", 100, bad_value="1e308")
    one_line(cli("predict", run.bundle, data), 3, r"huge\.csv:7: column 'vibration': '1e308' is out of float32 range")


def test_serve_on_a_busy_port_fails_before_serving(run):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("serve", run.bundle, "--port", port, timeout=60)
    one_line(result, 2, rf"cannot listen on 127\.0\.0\.1:{port}: address already in use")
    assert "serving" not in result.stdout


def test_http_nested_and_huge_bodies_are_4xx(run):
    from edgepipe.runtime import Bundle
    from edgepipe.runtime.server import running

    def post(url: str, body: str) -> tuple[int, dict]:
        parsed = urlparse(url)
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        try:
            conn.request("POST", "/predict", body=body.encode(), headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    with running(Bundle.load(run.bundle)) as url:
        nested = post(url, '{"series": ' + deep(100000) + "}")
        huge = post(url, '{"series": [' + ",".join(["[1e308, 1, 1]"] * 40) + "]}")
    assert nested[0] == 400 and "nested too deeply" in nested[1]["error"]
    assert huge[0] == 422 and "out of float32 range" in huge[1]["error"]
