"""``edgepipe init DIR``: a pipeline project of your own to start from, like ``kedro new``.

Why: the way to a pipeline of one's own (``pipeline/user_pipeline.py``) should start from something that runs, not
from a blank file. The project is a Python package (``DIR/<package>/``: ``pipeline.py`` with ``create_pipeline``,
``components.py`` with one custom component), ``config.yaml``, ``data/sample.csv`` (300 generated rows) and
``tests/test_pipeline.py``, which runs the pipeline end to end on that sample; ``pyproject.toml`` makes it
installable, which a Kubeflow task image needs. The files are package data (``pipeline/scaffold_template/*.tmpl``,
``{{package}}`` and ``{{name}}`` filled in), so what ``init`` writes is what the edgepipe tests check.
"""
from __future__ import annotations

import argparse
import csv
import io
import keyword
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from edgepipe.pipeline.errors import ConfigError

TEMPLATE = Path(__file__).parent / "scaffold_template"
SAMPLE_ROWS = 300


@dataclass
class Project:
    directory: Path
    package: str
    files: list[str] = field(default_factory=list)  # relative paths written


def add_command(sub) -> None:
    init = sub.add_parser("init", help="scaffold a pipeline project of your own (pipeline.py, config, test)")
    init.add_argument("directory", help="new or empty directory to create the project in")
    init.add_argument("--name", help="its Python package name (default: the directory's name)")


def cmd_init(args: argparse.Namespace) -> int:
    project = create_project(Path(args.directory), args.name)
    print(f"created {project.package} in {project.directory}: {', '.join(project.files)}")
    print(f"next: cd {project.directory} && edgepipe run {project.package}/pipeline.py config.yaml"
          " && python -m pytest tests")
    return 0


def create_project(directory: Path, name: str | None = None) -> Project:
    """Write the project into ``directory`` (new or empty; anything else is refused before a file is written)."""
    name = name or directory.resolve().name
    package = package_name(name)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        what = "is a file" if not directory.is_dir() else "is not empty"
        raise ConfigError(f"init: {directory} {what}; give a new or empty directory")
    project = Project(directory, package)
    for template in sorted(TEMPLATE.rglob("*.tmpl")):
        relative = template.relative_to(TEMPLATE).with_suffix("")  # drop .tmpl
        parts = [package if part == "package" else part for part in relative.parts]
        text = template.read_text().replace("{{package}}", package).replace("{{name}}", name)
        _write(project, Path(*parts), text)
    _write(project, Path("data/sample.csv"), sample_csv())
    return project


def package_name(name: str) -> str:
    """The project's import name: the name with dashes and dots as underscores; it must be an identifier that
    shadows neither edgepipe nor the standard library."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ConfigError(f"init: project name '{name}' may hold only letters, digits, '_', '-' and '.' "
                          "(pass --name)")
    package = re.sub(r"[-.]", "_", name).lower()
    if not package.isidentifier() or keyword.iskeyword(package):
        raise ConfigError(f"init: '{package}' (from '{name}') is not a Python package name; pass --name")
    if package == "edgepipe" or package in sys.stdlib_module_names:
        shadowed = "edgepipe" if package == "edgepipe" else "the standard library"
        raise ConfigError(f"init: package name '{package}' would shadow {shadowed}; pass another --name")
    return package


def sample_csv(rows: int = SAMPLE_ROWS, seed: int = 0) -> str:
    """Generated readings of a motor: a fault when the electrical power (voltage x current) runs high, with 3%
    of labels flipped (real labels are noisy). Deterministic, so the project's test is repeatable."""
    import numpy as np

    rng = np.random.default_rng(seed)
    voltage = rng.normal(230.0, 6.0, rows)
    current = rng.uniform(0.5, 10.0, rows)
    power = voltage * current
    temperature = 35.0 + 0.004 * power + rng.normal(0.0, 2.0, rows)
    fault = (power > 1500.0) ^ (rng.random(rows) < 0.03)
    lines = [["voltage", "current", "temperature", "fault"]]
    lines += [[f"{v:.2f}", f"{c:.3f}", f"{t:.2f}", str(int(f))] for v, c, t, f in zip(voltage, current, temperature,
                                                                                       fault)]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(lines)
    return out.getvalue()


def _write(project: Project, relative: Path, text: str) -> None:
    target = project.directory / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    project.files.append(str(relative))
