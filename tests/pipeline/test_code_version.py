"""The cache key's code version covers what a component imports, transitively, and nothing else.

Before, it hashed the component's own folder: editing ``components/optimization/tflite.py`` left evaluate/export
cached with stale results, and editing ``csv_rows.py`` invalidated components that do not use it.
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

FILES = {
    "__init__.py": "",
    "helpers/__init__.py": "",
    "helpers/util.py": "def f():\n    return 1\n",
    "helpers/unused.py": "X = 1\n",
    "other.py": "Y = 2\n",
    # a lazy import inside the function, as edgepipe's components keep TensorFlow out of light modules
    "comp_a.py": """
        from edgepipe.pipeline.component import component

        @component
        def a() -> dict:
            from fakepkg.helpers.util import f
            return {"v": f()}
    """,
    # ``from package import submodule``
    "comp_b.py": """
        from edgepipe.pipeline.component import component
        from fakepkg.helpers import util

        @component
        def b() -> dict:
            return {"v": util.f()}
    """,
    # a relative import of another helper
    "comp_c.py": """
        from edgepipe.pipeline.component import component
        from .helpers import unused

        @component
        def c() -> dict:
            return {"v": unused.X}
    """,
}


@pytest.fixture
def fakepkg(tmp_path, monkeypatch):
    root = tmp_path / "fakepkg"
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    modules = {name: importlib.import_module(f"fakepkg.comp_{name}") for name in "abc"}
    yield root, {name: getattr(module, name) for name, module in modules.items()}
    for name in [m for m in sys.modules if m == "fakepkg" or m.startswith("fakepkg.")]:
        del sys.modules[name]
    from edgepipe.pipeline.code_version import resolve

    resolve.cache_clear()  # the next test's fakepkg lives elsewhere (a real package does not move in a process)


def versions(components: dict) -> dict[str, str]:
    for comp in components.values():
        comp.__dict__.pop("code_version", None)  # a new process would compute it afresh
    return {name: comp.code_version for name, comp in components.items()}


def edit(path: Path) -> None:
    path.write_text(path.read_text() + "# edited\n")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_editing_a_helper_invalidates_exactly_the_components_that_import_it(fakepkg):
    root, components = fakepkg
    before = versions(components)
    edit(root / "helpers" / "util.py")
    after = versions(components)
    assert after["a"] != before["a"] and after["b"] != before["b"]
    assert after["c"] == before["c"]

    edit(root / "helpers" / "unused.py")
    again = versions(components)
    assert again["c"] != after["c"] and again["a"] == after["a"] and again["b"] == after["b"]


def test_editing_an_unrelated_module_invalidates_nothing(fakepkg):
    root, components = fakepkg
    before = versions(components)
    edit(root / "other.py")
    assert versions(components) == before


def test_declared_version_is_part_of_it(fakepkg):
    _, components = fakepkg
    assert components["a"].code_version.startswith("1:")


def test_edgepipe_components_cover_the_helpers_they_use_and_only_those():
    """Found by reading imports, without importing TensorFlow (a fresh interpreter checks sys.modules)."""
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from edgepipe.pipeline.code_version import module_closure
        repo = Path({str(REPO)!r})
        def files(rel, name):
            return {{str(p.relative_to(repo)) for p in module_closure(repo / rel, name)}}
        evaluate = files("components/evaluation/evaluate.py", "edgepipe.components.evaluation.evaluate")
        export = files("components/export/bundle.py", "edgepipe.components.export.bundle")
        stats = files("components/data/statistics.py", "edgepipe.components.data.statistics")
        train = files("components/training/train_model.py", "edgepipe.components.training.train_model")
        assert "runtime/litert.py" in evaluate, evaluate  # the one TFLite wrapper every variant is run with
        assert "components/optimization/tflite.py" in export, export  # float32 conversion when no variant stage
        assert "tasks/supervised.py" in evaluate and "tasks/anomaly.py" in export  # registries' by-name imports
        assert "models/cnn.py" in train and "models/sequence.py" in train, train
        assert "components/evaluation/variants.py" in export, export
        assert "pipeline/artifacts.py" in evaluate and "pipeline/artifacts.py" in stats
        assert not any(f.startswith(("components/report", "components/export")) for f in stats), stats
        assert "components/training/train_gan.py" not in evaluate, evaluate
        assert "tensorflow" not in sys.modules
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def test_same_code_elsewhere_has_the_same_version(fakepkg, tmp_path):
    """A source checkout and an installed copy (another directory) agree, as a compiled Kubeflow pipeline's tasks
    and the machine that compiled it must."""
    import shutil

    root, components = fakepkg
    here = versions(components)["a"]
    elsewhere = tmp_path / "site" / "packages"
    shutil.copytree(root, elsewhere / "fakepkg")
    script = ("import sys; sys.path.insert(0, sys.argv[1]); import fakepkg.comp_a as m; "
              "print(m.a.code_version)")
    done = subprocess.run([sys.executable, "-c", script, str(elsewhere)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == here
