"""``edgepipe init``: the scaffolded project's own test passes (pytest run on the generated project), and bad
targets or names are one line, exit 2, nothing written."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from edgepipe.pipeline.cli import main
from edgepipe.pipeline.scaffold import SAMPLE_ROWS, TEMPLATE


def test_init_writes_every_template_file_filled_in(tmp_path, capsys):
    assert main(["init", str(tmp_path / "motor-watch")]) == 0
    out = capsys.readouterr().out
    assert "created motor_watch" in out and "edgepipe run motor_watch/pipeline.py config.yaml" in out
    project = tmp_path / "motor-watch"
    written = {str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()}
    expected = {str(p.relative_to(TEMPLATE).with_suffix("")).replace("package/", "motor_watch/")
                for p in TEMPLATE.rglob("*.tmpl")} | {"data/sample.csv"}
    assert written == expected
    for path in project.rglob("*"):
        if path.is_file():
            assert "{{" not in path.read_text(), path
    rows = list(csv.DictReader((project / "data" / "sample.csv").open()))
    assert len(rows) == SAMPLE_ROWS and set(rows[0]) == {"voltage", "current", "temperature", "fault"}
    assert 0.1 < sum(int(r["fault"]) for r in rows) / len(rows) < 0.9  # both classes to learn


@pytest.mark.parametrize("args, message", [
    (["--name", "my project"], "may hold only letters"),
    (["--name", "json"], "would shadow the standard library"),
    (["--name", "class"], "is not a Python package name"),
])
def test_init_refuses_a_bad_name_in_one_line(tmp_path, capsys, args, message):
    assert main(["init", str(tmp_path / "p"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "p").exists()


def test_init_refuses_a_directory_with_files(tmp_path, capsys):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "notes.txt").write_text("mine")
    assert main(["init", str(tmp_path / "p")]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "p").iterdir()] == ["notes.txt"]


@pytest.mark.slow
def test_the_scaffolded_projects_own_test_passes(tmp_path):
    assert main(["init", str(tmp_path / "sensor_faults")]) == 0
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                            cwd=tmp_path / "sensor_faults", capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout
