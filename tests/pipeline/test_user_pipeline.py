"""Your own pipeline (pipeline/user_pipeline.py) through the CLI.

Fast part: loading a file or ``module:function``, one-line errors, the code version of a top-level module of your
own. End to end: TFX's taxi big-tipper as the user pipeline ``examples/taxi_tips/`` (a custom label component) on a
400-row sample of ``../shared/datasets/taxi``: an int8 bundle better than the majority class (in its evaluation
and through the runtime on the raw rows), a fully cached re-run,
an edit of the custom component re-running it and what is downstream, ``runs``/``show``, and ``compile --target
kfp`` refusing the component while only a path makes it importable, compiling once the project is installed.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgepipe.pipeline.cli import main
from edgepipe.pipeline.code_version import code_digest
from edgepipe.pipeline.errors import ConfigError
from edgepipe.pipeline.user_pipeline import is_pipeline_ref, module_name_for, split_targets

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "taxi_tips"
TAXI = REPO.parent / "shared" / "datasets" / "taxi" / "data.csv"
SAMPLE_ROWS = 400


# ---- loading ------------------------------------------------------------------------------------------------------
def test_pipeline_and_config_are_told_apart_in_either_order():
    assert split_targets("p.py", "c.yaml") == ("p.py", "c.yaml")
    assert split_targets("c.yaml", "pkg.mod:create") == ("pkg.mod:create", "c.yaml")
    assert split_targets("nab", None) == (None, "nab")
    assert is_pipeline_ref("dir/p.py:build") and not is_pipeline_ref("configs/mlp.yaml")
    with pytest.raises(ConfigError, match="at most one pipeline"):
        split_targets("a.py", "b.py")


def test_a_file_in_a_package_imports_under_its_package_name(tmp_path):
    (tmp_path / "proj" / "pkg").mkdir(parents=True)
    (tmp_path / "proj" / "pkg" / "__init__.py").write_text("")
    (tmp_path / "proj" / "pkg" / "flow.py").write_text("")
    (tmp_path / "loose.py").write_text("")
    assert module_name_for(tmp_path / "proj" / "pkg" / "flow.py") == ("pkg.flow", tmp_path / "proj")
    assert module_name_for(tmp_path / "loose.py") == ("loose", tmp_path)


TINY = '''
from edgepipe.pipeline.artifacts import Examples, Model
from edgepipe.pipeline.component import Input, Output, component
from edgepipe.pipeline.dag import Pipeline
from {helpers} import double


@component
def make(out: Output[Examples], value: int = 1) -> dict:
    out.write_json("value.json", {{"value": double(value)}})
    return {{"value": double(value)}}


@component
def add(examples: Input[Examples], model: Output[Model], step: int = 1) -> dict:
    total = examples.read_json("value.json")["value"] + step
    model.write_json("total.json", {{"total": total}})
    return {{"total": total}}


def create_pipeline(config):
    first = make(value=config.training.epochs)
    return Pipeline("{name}", [first, add(examples=first.outputs["out"])])
'''


def _tiny(folder: Path, stem: str, value: str = "config.training.epochs") -> Path:
    """The TINY pipeline as ``folder/stem.py`` (with its helpers module); ``value``: what its step reads."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}_helpers.py").write_text("def double(x):\n    return 2 * x\n")
    (folder / "unrelated.py").write_text("X = 1\n")
    path = folder / f"{stem}.py"
    path.write_text(TINY.format(helpers=f"{stem}_helpers", name=stem.replace("_", "-")).replace(
        "value=config.training.epochs", f"value={value}"))
    return path


def test_a_pipeline_file_runs_caches_and_is_listed(tmp_path, capsys):
    path = _tiny(tmp_path / "project", "tiny_flow")
    run = ["run", str(path), "--root", str(tmp_path / "root"), "--output", str(tmp_path / "out"),
           "--set", "training.epochs=3"]
    assert main(run) == 0
    assert "run " in capsys.readouterr().out
    assert main(run) == 0
    assert "(2/2 cached)" in capsys.readouterr().out
    assert main(["show", "latest", "--root", str(tmp_path / "root"), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["run"]["pipeline"] == "tiny-flow"
    metrics = {ex["node"]: json.loads(ex["metrics"]) for ex in record["executions"]}
    assert metrics == {"make": {"value": 6}, "add": {"total": 7}}


def test_a_module_function_reference_runs_from_the_project_folder(tmp_path, capsys, monkeypatch):
    package = tmp_path / "refproj"
    _tiny(package, "flow")
    (package / "__init__.py").write_text("")
    flow = package / "flow.py"
    flow.write_text(flow.read_text().replace("from flow_helpers", "from refproj.flow_helpers"))
    monkeypatch.chdir(tmp_path)  # like `python -m`: the project's folder is where its package is found
    assert main(["run", "refproj.flow:create_pipeline", "--root", "root", "--output", "out"]) == 0
    assert "(0/2 cached)" in capsys.readouterr().out
    assert main(["show", "latest", "--root", "root", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run"]["pipeline"] == "flow"


def test_a_failed_run_of_your_pipeline_resumes_at_the_failed_component(tmp_path, capsys, monkeypatch):
    path = _tiny(tmp_path / "project", "resumed_flow")
    path.write_text(path.read_text().replace(
        '    total = examples.read_json("value.json")["value"] + step\n',
        '    import os\n    if os.environ.get("RESUMED_FLOW_FAIL"):\n        raise RuntimeError("told to fail")\n'
        '    total = examples.read_json("value.json")["value"] + step\n'))
    run = ["run", str(path), "--root", str(tmp_path / "root"), "--output", str(tmp_path / "out")]
    monkeypatch.setenv("RESUMED_FLOW_FAIL", "1")
    assert main(run) == 1
    assert "told to fail" in capsys.readouterr().err
    monkeypatch.delenv("RESUMED_FLOW_FAIL")
    assert main(run) == 0
    assert "(1/2 cached)" in capsys.readouterr().out  # make completed in the failed run and is not repeated
    assert main(["runs", "--root", str(tmp_path / "root")]) == 0
    statuses = [line.split()[2] for line in capsys.readouterr().out.splitlines()[1:]]
    assert statuses == ["complete", "failed"]


def test_an_explicit_key_the_function_never_reads_is_refused(tmp_path, capsys):
    path = _tiny(tmp_path / "project", "strict_flow")
    common = ["--root", str(tmp_path / "root"), "--output", str(tmp_path / "out"), "--set", "training.epochs=2"]
    assert main(["run", str(path), *common, "--set", "training.batch_size=8", "--set", "window.size=64"]) == 2
    err = capsys.readouterr().err
    assert "'training.batch_size', 'window.size' are not read by strict_flow:create_pipeline" in err
    assert err.startswith("edgepipe: error: --set training.batch_size=8: config keys")  # named where it was given
    assert err.count("\n") == 1 and not (tmp_path / "root" / "metadata.sqlite").exists()
    assert main(["run", str(path), *common, "--set", "pipeline.max_workers=2"]) == 0  # the runner reads pipeline.*


def test_a_key_never_read_is_refused_before_the_anomaly_templates_window_check(tmp_path, capsys):
    """window.size=3 breaks the anomaly template's window check, which an mlp pipeline of your own never meets
    (pipeline.template is only its default): the line says the key is not read, not that 3 is not divisible."""
    path = _tiny(tmp_path / "project", "unread_flow")
    (tmp_path / "config.yaml").write_text("training: {epochs: 2}\nwindow: {size: 3}\n")
    common = ["--root", str(tmp_path / "root"), "--output", str(tmp_path / "out")]
    for config, origin in ((["--set", "window.size=3"], "--set window.size=3"),
                           ([str(tmp_path / "config.yaml")], str(tmp_path / "config.yaml"))):
        assert main(["run", str(path), *config, *common]) == 2
        err = capsys.readouterr().err
        assert "config key 'window.size' is not read by unread_flow:create_pipeline" in err and "divisible" not in err
        assert err.startswith(f"edgepipe: error: {origin}: config key"), err
        assert err.count("\n") == 1


def test_the_window_check_still_refuses_a_pipeline_that_reads_the_window(tmp_path, capsys):
    path = _tiny(tmp_path, "window_flow", value="config.window.size")
    assert main(["run", str(path), "--root", str(tmp_path / "root"), "--output",
                 str(tmp_path / "out"), "--set", "window.size=3"]) == 2
    err = capsys.readouterr().err
    assert err == ("edgepipe: error: --set window.size=3: window.size=3 must be divisible by "
                   "2**len(model.filters)=4\n")
    assert not (tmp_path / "root" / "metadata.sqlite").exists()


def test_the_held_back_window_check_is_raised_by_whoever_does_not_build():
    """compile/submit build the pipeline (UserPipeline.build raises it); execute-node with a config does not."""
    from edgepipe.pipeline.config import raise_deferred
    from edgepipe.pipeline.user_pipeline import load_config

    config = load_config(None, ["window.size=3"])
    with pytest.raises(ConfigError, match=r"^--set window.size=3: window.size=3 must be divisible"):
        raise_deferred(config)
    raise_deferred(load_config(None, ["window.size=64"]))  # nothing held back


def test_a_section_used_whole_counts_as_read(tmp_path, capsys):
    path = _tiny(tmp_path, "whole_flow", value="len(dict(config.training))")
    assert main(["run", str(path), "--root", str(tmp_path / "root"), "--output",
                 str(tmp_path / "out"), "--set", "training.batch_size=8"]) == 0


def test_a_top_level_module_keys_its_sibling_modules_not_the_rest_of_its_folder(tmp_path):
    path = _tiny(tmp_path, "keyed_flow")
    before = code_digest(path, "keyed_flow")
    (tmp_path / "unrelated.py").write_text("X = 2\n")
    assert code_digest(path, "keyed_flow") == before
    (tmp_path / "keyed_flow_helpers.py").write_text("def double(x):\n    return x + x\n")
    assert code_digest(path, "keyed_flow") != before


@pytest.mark.parametrize("body, message", [
    ("def create_pipeline(config):\n    return [1, 2]\n", "returned list, not a Pipeline"),
    ("def build(config):\n    pass\n", "no function 'create_pipeline'"),
    ("def create_pipeline():\n    pass\n", "must take one argument, the config"),
    ("def create_pipeline(config)\n    pass\n", "syntax error in pipeline module"),
    ("def create_pipeline(config):\n    return {}['missing']\n", "failed at "),
    ("import no_such_module_here\n", "no module named 'no_such_module_here'"),
])
def test_a_broken_pipeline_file_is_one_line_and_exit_2(tmp_path, capsys, body, message):
    stem = f"broken_{abs(hash(body)) % 10**8}"
    path = tmp_path / f"{stem}.py"
    path.write_text(body)
    code = main(["run", str(path), "--root", str(tmp_path / "root"), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_missing_pipeline_file_and_module_are_named(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.py"), "--root", str(tmp_path / "r")]) == 2
    assert "pipeline file" in capsys.readouterr().err
    assert main(["run", "no_such_pkg.flow:create_pipeline", "--root", str(tmp_path / "r")]) == 2
    assert "no module named 'no_such_pkg'" in capsys.readouterr().err


# ---- TFX taxi end to end --------------------------------------------------------------------------------------------
@pytest.fixture
def taxi_project(tmp_path) -> Path:
    """The example copied (so the test may edit its component), and the first rows of the taxi CSV beside it."""
    if not TAXI.exists():
        pytest.skip(f"taxi data not found at {TAXI} (../shared/datasets beside the repository)")
    shutil.copytree(EXAMPLE, tmp_path / "taxi_tips", ignore=shutil.ignore_patterns("__pycache__"))
    with TAXI.open() as source:
        (tmp_path / "taxi.csv").write_text("".join(line for _, line in zip(range(SAMPLE_ROWS + 1), source)))
    return tmp_path


def _edgepipe(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The CLI in a fresh process, as a user runs it (a fresh process also re-reads an edited component)."""
    return subprocess.run([sys.executable, "-m", "edgepipe", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})


def _run(project: Path, *extra: str) -> subprocess.CompletedProcess:
    result = _edgepipe(project, "run", "taxi_tips/pipeline.py", "taxi_tips/config.yaml", "--root", "root",
                       "--output", "bundle", "--set", "data.source=taxi.csv", "--set", "training.epochs=40",
                       "--set", "evaluate.latency_runs=2", *extra)
    assert result.returncode == 0, result.stderr
    return result


def _executions(project: Path) -> dict[str, dict]:
    shown = _edgepipe(project, "show", "latest", "--root", "root", "--json")
    assert shown.returncode == 0, shown.stderr
    return {ex["node"]: ex for ex in json.loads(shown.stdout)["executions"]}


def _states(project: Path) -> dict[str, bool]:
    return {node: bool(ex["cached"]) for node, ex in _executions(project).items()}


def _labeled(project: Path) -> str:
    """The content fingerprint of label_big_tippers' output in the latest run: what its consumers' keys hold."""
    return next(a["fingerprint"] for a in _executions(project)["label_big_tippers"]["artifacts"])


def test_a_tip_of_exactly_20_percent_is_not_a_big_tip(tmp_path, monkeypatch):
    """T1: float32 fare/tips compared as stored made 51 real trips with a tip of exactly 20% big tips."""
    from decimal import Decimal

    from edgepipe.components.data import ingest_csv
    if not TAXI.exists():
        pytest.skip(f"taxi data not found at {TAXI}")
    monkeypatch.syspath_prepend(str(EXAMPLE.parent))
    from taxi_tips.label import label_big_tippers
    with TAXI.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [r for r in reader if r["fare"] and r["tips"]]
    exact = [r for r in rows if Decimal(r["tips"]) * 5 == Decimal(r["fare"]) and Decimal(r["fare"]) > 0]
    sample = exact + rows[:200]
    assert len(exact) >= 40  # 51 in the sample
    with (tmp_path / "t.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(sample)

    def call(comp, root, **params):
        outputs = {name: typ(tmp_path / root / name) for name, typ in comp.outputs.items()}
        metrics = comp.fn(**outputs, **params)
        for artifact in outputs.values():
            artifact.finalize()
        return metrics, outputs

    _, ingested = call(ingest_csv, "i", source=str(tmp_path / "t.csv"), label_column="tips",
                       feature_columns=["fare", "company"], split={"train": 1.0})
    _, labeled = call(label_big_tippers, "l", examples=ingested["examples"])
    big = int(labeled["labeled"].read_numpy("train")["label"].sum())
    assert big == sum(Decimal(r["tips"]) > Decimal("0.2") * Decimal(r["fare"]) for r in sample)


@pytest.mark.slow
def test_taxi_big_tipper_pipeline_of_your_own_end_to_end(taxi_project):
    first = _run(taxi_project)
    assert "(0/8 cached)" in first.stdout
    bundle = json.loads((taxi_project / "bundle" / "bundle.json").read_text())
    assert (bundle["task"], bundle["primary_variant"], bundle["labels"]) == (
        "classification", "int8_ptq", ["small_tip", "big_tip"])
    evaluation = bundle["metrics"]["evaluation"]
    confusion = evaluation["confusion_matrix"]  # rows: true class on the held-out test split
    majority = max(sum(row) for row in confusion) / sum(map(sum, confusion))
    int8 = bundle["metrics"]["per_model"]["int8"]["all"]["accuracy"]
    assert int8 > majority + 0.03, (int8, majority)  # payment type and fare tell big tippers apart

    predicted = _edgepipe(taxi_project, "predict", "bundle", "taxi.csv", "--format", "csv", "--output", "pred.csv")
    assert predicted.returncode == 0, predicted.stderr  # the runtime applies the bundle's transform to raw rows
    with (taxi_project / "taxi.csv").open() as raw, (taxi_project / "pred.csv").open() as pred:
        truth = [float(r["tips"]) > 0.2 * float(r["fare"]) for r in csv.DictReader(raw)]
        classes = [int(r["class"]) for r in csv.DictReader(pred)]
    assert len(classes) == SAMPLE_ROWS
    right = sum(int(t) == c for t, c in zip(truth, classes)) / SAMPLE_ROWS
    assert right > max(sum(truth), SAMPLE_ROWS - sum(truth)) / SAMPLE_ROWS + 0.03, right

    assert "(8/8 cached)" in _run(taxi_project).stdout

    label = taxi_project / "taxi_tips" / "label.py"
    source = label.read_text()
    assert "BIG_TIP = 0.2 " in source
    label.write_text(source.replace("BIG_TIP = 0.2 ", "BIG_TIP = 0.15 "))  # another question, other labels
    _run(taxi_project)
    states = _states(taxi_project)
    assert states == {"ingest_csv": True, "label_big_tippers": False, "compute_statistics": False,
                      "transform_features": False, "train_model": False, "convert_tflite": False,
                      "evaluate": False, "export_bundle": False}

    labeled = _labeled(taxi_project)
    label.write_text(label.read_text() + "\n# a comment changes the code, not the labels\n")
    _run(taxi_project)
    states = _states(taxi_project)
    assert not states["label_big_tippers"] and states["ingest_csv"]
    # the same labels again: every consumer's cache key (which holds its inputs' fingerprints) is unchanged
    assert _labeled(taxi_project) == labeled

    runs = _edgepipe(taxi_project, "runs", "--root", "root")
    lines = [line for line in runs.stdout.splitlines()[1:] if "taxi-tips" in line]
    assert len(lines) == 4 and all("complete" in line for line in lines)
    assert [line.split()[-1] for line in lines] == ["7/8", "1/8", "8/8", "0/8"]  # newest first
    shown = _edgepipe(taxi_project, "show", "latest", "--root", "root")
    assert "label_big_tippers" in shown.stdout and "big_tip_rate_test" in shown.stdout


@pytest.mark.slow
def test_compile_refuses_a_component_only_a_path_makes_importable_then_compiles_it_installed(taxi_project):
    compile_args = ["compile", "--target", "kfp", "--output", "taxi.yaml", "--image", "registry/taxi:1",
                    "--set", "data.source=gs://bucket/taxi/data.csv"]
    refused = _edgepipe(taxi_project, *compile_args, "taxi_tips/pipeline.py", "taxi_tips/config.yaml")
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    assert "component 'label_big_tippers'" in refused.stderr and "cannot import it" in refused.stderr
    assert not (taxi_project / "taxi.yaml").exists()

    site = taxi_project / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                              "--target", str(site), str(taxi_project / "taxi_tips")], capture_output=True, text=True,
                             timeout=300)
    assert install.returncode == 0, install.stderr
    shutil.rmtree(taxi_project / "taxi_tips")  # only the installed copy remains, as in a task image
    compiled = _edgepipe(taxi_project, *compile_args, "taxi_tips.pipeline:create_pipeline",
                         str(EXAMPLE / "config.yaml"), env={"PYTHONPATH": str(site)})
    assert compiled.returncode == 0, compiled.stderr
    spec = (taxi_project / "taxi.yaml").read_text()
    assert "taxi_tips.label:label_big_tippers" in spec and "taxi_tips.pipeline:create_pipeline" in spec
    assert "compiled 'edgepipe-taxi-tips' (8 node tasks" in compiled.stdout
