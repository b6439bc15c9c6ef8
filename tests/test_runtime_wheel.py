"""The runtime-only distribution (``setup_runtime.py`` -> ``edgepipe-runtime``): its wheel is built from this
repository, installed into a fresh virtual environment (no system site-packages, so the TensorFlow of the
development environment cannot leak in), and runs a real bundle there -- same predictions as the full install,
with TensorFlow, the pipeline and Beam not importable."""
from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.runtime.fixtures import REPO, SENSORS, default_run

UNREACHABLE = ("could not find a version", "no matching distribution", "connection", "network is unreachable",
               "temporary failure in name resolution")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return default_run(tmp_path_factory)


@pytest.fixture(scope="module")
def runtime_env(tmp_path_factory) -> Path:
    """A fresh venv with only the edgepipe-runtime wheel and what it requires (pins from requirements.lock)."""
    base = tmp_path_factory.mktemp("runtime-wheel")
    build = subprocess.run([sys.executable, "setup_runtime.py", "-q", "egg_info", "--egg-base", str(base),
                            "build", "--build-base", str(base / "build"), "bdist_wheel", "--bdist-dir",
                            str(base / "bdist"), "-d", str(base / "dist")], cwd=REPO, capture_output=True, text=True,
                           timeout=120)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next((base / "dist").glob("edgepipe_runtime-*.whl"))
    env = base / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env)
    python = env / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "-c", str(REPO / "requirements.lock"),
                              str(wheel)], capture_output=True, text=True, timeout=300)
    if install.returncode and any(s in install.stderr.lower() for s in UNREACHABLE):
        pytest.skip(f"package registry unreachable for numpy/ai-edge-litert: {install.stderr.strip()[-300:]}")
    assert install.returncode == 0, install.stderr[-2000:]
    return python


def test_wheel_holds_only_the_runtime(runtime_env):
    names = subprocess.run([str(runtime_env), "-m", "pip", "show", "-f", "edgepipe-runtime"], capture_output=True,
                           text=True, timeout=60).stdout
    files = [line.strip() for line in names.splitlines() if line.startswith("  edgepipe/") and "__pycache__" not in line]
    assert files and all(f.startswith("edgepipe/runtime/") or f == "edgepipe/__init__.py" for f in files), files


def test_bundle_runs_in_the_fresh_env_without_tensorflow(runtime_env, run, tmp_path):
    head = tmp_path / "head.csv"
    lines = SENSORS.read_text().splitlines()
    head.write_text("\n".join(lines[:400]) + "\n")
    check = ("import importlib.util as u, sys; "
             "bad = [m for m in ('tensorflow', 'tf_keras', 'apache_beam', 'pydantic', 'edgepipe.pipeline') "
             "if u.find_spec(m.split('.')[0]) is not None and (m != 'edgepipe.pipeline' or u.find_spec(m))]; "
             "print(bad); sys.exit(1 if bad else 0)")
    importable = subprocess.run([str(runtime_env), "-c", check], capture_output=True, text=True, timeout=60,
                                cwd=tmp_path)
    assert importable.returncode == 0, importable.stdout + importable.stderr
    args = ["predict", str(run.bundle), str(head), "--series-column", "machine", "--format", "csv"]
    device = subprocess.run([str(runtime_env), "-m", "edgepipe.runtime", *args], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert device.returncode == 0, device.stderr[-2000:]
    full = subprocess.run([sys.executable, "-m", "edgepipe.runtime", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert full.returncode == 0, full.stderr[-2000:]
    assert device.stdout.splitlines()[0].startswith("series,start_time,start,end,score,anomaly")
    assert len(device.stdout.splitlines()) > 10 and device.stdout == full.stdout
    script = Path(runtime_env).parent / "edgepipe-runtime"
    info = subprocess.run([str(script), "info", str(run.bundle)], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert info.returncode == 0 and '"task": "anomaly_detection"' in info.stdout.replace(": ", ": "), info.stderr


def test_the_readme_build_command_ignores_a_stale_build_folder(tmp_path):
    """``python setup_runtime.py bdist_wheel -d dist`` as the README gives it: setuptools packs everything under
    ``build/lib``, so a ``build/`` the full distribution left behind used to ship the pipeline in the device wheel,
    and the command wrote ``build/`` and ``edgepipe_runtime.egg-info`` into the checkout. It now builds in a
    temporary folder: the stale file stays out and the checkout is left as it was."""
    import shutil
    import zipfile

    checkout = tmp_path / "checkout"
    shutil.copytree(REPO / "edgepipe", checkout / "edgepipe", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "runtime", checkout / "runtime", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "setup_runtime.py", checkout)
    stale = checkout / "build" / "lib" / "edgepipe" / "pipeline" / "runner.py"
    stale.parent.mkdir(parents=True)
    stale.write_text("# left by `python setup.py bdist_wheel`\n")
    before = sorted(p.relative_to(checkout) for p in checkout.rglob("*"))
    build = subprocess.run([sys.executable, "setup_runtime.py", "-q", "bdist_wheel", "-d", str(tmp_path / "dist")],
                           cwd=checkout, capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr[-2000:]
    names = zipfile.ZipFile(next((tmp_path / "dist").glob("edgepipe_runtime-*.whl"))).namelist()
    assert "edgepipe/runtime/bundle.py" in names
    assert not [n for n in names if n.startswith("edgepipe/pipeline")], names
    assert sorted(p.relative_to(checkout) for p in checkout.rglob("*") if "__pycache__" not in p.parts) == before
