"""The Dockerfile, checked without a Docker engine: pinned base, non-root targets, the CLI as entry point, and
every file it copies or relies on present in the repository."""
import ast
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edgepipe.pipeline.beam_options import IMAGE_SOURCE_DIR, SOURCE_DIR_ENV

REPO = Path(__file__).resolve().parents[1]
TARGETS = ["runtime", "pipeline"]


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword):
        return [args for kw, args in self.instructions if kw == keyword]


def parse(text):
    """(global ARG defaults, stages) from Dockerfile text: continuations joined, comments dropped."""
    logical, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    args, stages = {}, []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
            stages.append(Stage(parts[2] if len(parts) > 2 else str(len(stages)), image))
        elif keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif stages:
            stages[-1].instructions.append((keyword, rest.strip()))
    return args, {stage.name: stage for stage in stages}


@pytest.fixture(scope="module")
def stages():
    return parse((REPO / "Dockerfile").read_text())[1]


def lineage(stages, name):
    """The stage and the stages it is built FROM, nearest first."""
    chain = [stages[name]]
    while chain[-1].base in stages:
        chain.append(stages[chain[-1].base])
    return chain


def test_parser_reads_continuations_args_and_stages():
    args, parsed = parse("ARG IMG=python:3.11.1\n# c\nFROM ${IMG} AS a\nRUN one \\\n  && two\nFROM a AS b\nUSER x\n")
    assert args == {"IMG": "python:3.11.1"} and list(parsed) == ["a", "b"]
    assert parsed["a"].base == "python:3.11.1" and parsed["a"].all("RUN") == ["one && two"]


def test_external_base_images_are_pinned_to_an_exact_version_or_digest(stages):
    external = [stage.base for stage in stages.values() if stage.base not in stages]
    assert external
    for image in external:
        name, _, tag = image.partition("@")[0].rpartition(":")
        assert "@sha256:" in image or re.match(r"^\d+\.\d+\.\d+", tag), f"{image} is not pinned"


@pytest.mark.parametrize("target", TARGETS)
def test_targets_run_as_a_non_root_user_the_image_creates(stages, target):
    users = stages[target].all("USER")
    assert users, f"stage {target} never switches user"
    assert users[-1].split(":")[0] not in {"root", "0"}
    keywords = [kw for kw, _ in stages[target].instructions]
    assert "RUN" not in keywords[len(keywords) - 1 - keywords[::-1].index("USER"):]  # nothing runs as root after
    created = [run for stage in lineage(stages, target) for run in stage.all("RUN")]
    assert any("useradd" in run and users[-1].split(":")[0] in run.split() for run in created)


def test_default_image_runs_the_cli_and_its_default_command_parses(stages):
    from edgepipe.pipeline.cli import _parser

    last = list(stages.values())[-1]
    assert last.name == "pipeline"  # `docker build .` builds the last stage
    assert json.loads(last.all("ENTRYPOINT")[-1]) == ["edgepipe"]
    assert "edgepipe=edgepipe.pipeline.cli:main" in (REPO / "setup.py").read_text()
    command = json.loads(last.all("CMD")[-1])
    assert _parser().parse_args(command).command == "run"


def test_runtime_entrypoint_module_exists(stages):
    entry = json.loads(stages["runtime"].all("ENTRYPOINT")[-1])
    assert entry[:2] == ["python", "-m"]
    package = entry[2].removeprefix("edgepipe.").split(".")
    assert (REPO.joinpath(*package) / "__main__.py").is_file() or REPO.joinpath(*package).with_suffix(".py").is_file()


def _copies(stage):
    for args in stage.all("COPY"):
        parts = [p for p in shlex.split(args) if not p.startswith("--")]
        if "--from" not in args:
            yield parts[:-1], parts[-1]


def test_every_copied_source_exists(stages):
    for stage in stages.values():
        for sources, _ in _copies(stage):
            for source in sources:
                assert (REPO / source).exists(), f"stage {stage.name} copies missing {source}"


def test_every_package_folder_is_copied(stages):
    """`pip install .` in the image maps these folders into edgepipe.*; one not copied is a module missing."""
    tree = ast.parse((REPO / "setup.py").read_text())
    folders = next(ast.literal_eval(node.value) for node in ast.walk(tree) if isinstance(node, ast.Assign)
                   and any(getattr(t, "id", None) == "SUBPACKAGES" for t in node.targets))
    copied = {source.rstrip("/") for sources, _ in _copies(stages["pipeline"]) for source in sources}
    assert {"edgepipe", "setup.py", *folders} <= copied


def test_runtime_image_installs_the_runtime_wheel_built_from_what_it_copies(stages):
    """The runtime target installs edgepipe-runtime (setup_runtime.py), built in its own stage from exactly the
    folders that distribution maps, so no pipeline source (nor TensorFlow) reaches the image."""
    import runpy

    builder = stages["runtime-wheel"]
    copied = {source.rstrip("/") for sources, _ in _copies(builder) for source in sources}
    package_dir = runpy.run_path(str(REPO / "setup_runtime.py"), run_name="setup_runtime")["PACKAGE_DIR"]
    assert "setup_runtime.py" in copied and "edgepipe/__init__.py" in copied
    assert {d.split("/")[0] for d in package_dir.values() if d != "edgepipe"} <= copied
    assert any("setup_runtime.py" in run and "bdist_wheel" in run for run in builder.all("RUN"))
    runtime = stages["runtime"]
    assert any("--from=runtime-wheel" in args for args in runtime.all("COPY"))
    assert not any(src in {"setup.py", "pipeline", "components"} for sources, _ in _copies(runtime) for src in
                   (s.rstrip("/") for s in sources))
    assert any("edgepipe_runtime-" in run and "[serve]" in run for run in runtime.all("RUN"))


def test_pipeline_stage_installs_the_lock_before_copying_sources(stages):
    instructions = stages["pipeline"].instructions
    lock_install = next(i for i, (kw, args) in enumerate(instructions)
                        if kw == "RUN" and "-r requirements.lock" in args)
    first_source = next(i for i, (kw, args) in enumerate(instructions) if kw == "COPY" and "pipeline/" in args)
    assert lock_install < first_source
    assert re.search(r"^kfp==2\.17\.", (REPO / "requirements.lock").read_text(), re.M)  # tasks run kfp's executor


def test_sources_sit_where_beam_options_expects_and_belong_to_the_user(stages):
    pipeline = stages["pipeline"]
    workdirs = [args for stage in reversed(lineage(stages, "pipeline")) for args in stage.all("WORKDIR")]
    setup_copy = next(args for args in pipeline.all("COPY") if "setup.py" in args)
    workdir_at_copy = [w for w in workdirs if w != "/home/edgepipe"][-1]
    assert workdir_at_copy == IMAGE_SOURCE_DIR
    assert f"{SOURCE_DIR_ENV}={IMAGE_SOURCE_DIR}" in " ".join(pipeline.all("ENV"))
    assert "--chown=edgepipe" in setup_copy
    assert any(f"chown edgepipe:edgepipe {IMAGE_SOURCE_DIR}" in run for run in pipeline.all("RUN"))


def test_dockerignore_keeps_environments_out_of_the_context():
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".venv", ".git", ".edgepipe"} <= ignored
    copied = {source.rstrip("/") for stage in parse((REPO / "Dockerfile").read_text())[1].values()
              for sources, _ in _copies(stage) for source in sources}
    assert not copied & ignored
