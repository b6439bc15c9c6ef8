"""An --output whose folder the user may not write is refused before anything runs (exit 1, as the copy's own
failure), and a run whose bundle never reached --output is recorded failed, not complete."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from edgepipe.pipeline import cli
from edgepipe.pipeline.artifacts import Bundle
from edgepipe.pipeline.component import Output, component
from edgepipe.pipeline.config import load_config
from edgepipe.pipeline.dag import Pipeline
from edgepipe.pipeline.errors import StorageError
from edgepipe.pipeline.metadata import MetadataStore

REPO = Path(__file__).resolve().parents[2]
# as `nobody`, with building the pipeline an error: exit 99 would mean the output check let the run through
PROBE = ("import sys, edgepipe.pipeline.templates as t\n"
         "t.build_pipeline = lambda config: sys.exit(99)\n"
         "from edgepipe.pipeline.cli import main\n"
         "sys.exit(main(['run', '--root', sys.argv[1], '--output', sys.argv[2]]))\n")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to drop to another user")
@pytest.mark.parametrize("output", ["locked/out", "locked/new/deeper/out"])
def test_an_output_in_a_folder_the_user_cannot_write_exits_1_before_the_run(output):
    tmp_path = Path(tempfile.mkdtemp(prefix="edgepipe-nobody-"))  # pytest's tmp_path is closed to other users
    try:
        _refused_as_nobody(tmp_path, output)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _refused_as_nobody(tmp_path: Path, output: str) -> None:
    tmp_path.chmod(0o755)
    (tmp_path / "open").mkdir(mode=0o777)
    (tmp_path / "open").chmod(0o777)
    (tmp_path / "locked").mkdir(mode=0o755)  # root's, read-only to nobody
    run = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", PROBE,
                          str(tmp_path / "open" / "root"), str(tmp_path / output)],
                         cwd=tmp_path / "open", env={**os.environ, "HOME": str(tmp_path / "open"), "PYTHONPATH": ""},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr
    assert run.stderr.strip() == (f"edgepipe: error: could not write the bundle to {tmp_path / output}: "
                                  f"permission denied at {tmp_path / 'locked'}")


@component
def tiny_bundle(bundle: Output[Bundle]) -> dict:
    (bundle.path / "bundle.json").write_text(json.dumps({"schema_version": 1, "task": "anomaly"}))
    return {}


def test_a_run_whose_bundle_copy_fails_is_recorded_failed(tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    args = SimpleNamespace(no_cache=False, output=str(tmp_path / "a-file" / "out"))
    with pytest.raises(StorageError, match="could not write the bundle"):
        cli._run_pipeline(args, load_config(None), Pipeline("tiny", [tiny_bundle()]), tmp_path / "root", None)
    runs = MetadataStore(tmp_path / "root" / "metadata.sqlite").runs()
    assert [r["status"] for r in runs] == ["failed"] and "could not write the bundle" in runs[0]["error"]
    assert "complete" not in capsys.readouterr().out
