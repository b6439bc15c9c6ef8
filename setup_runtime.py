"""Packaging for ``edgepipe-runtime``: the device-side distribution built from the same repository.

``pip install .[runtime]`` cannot leave TensorFlow out (extras only add to ``install_requires``), so a board that
only loads and runs bundles installs this second distribution instead: just ``edgepipe`` (its ``__init__``) and
``edgepipe.runtime``, with NumPy and LiteRT (``ai-edge-litert``); the ``serve`` extra adds FastAPI and uvicorn for
``python -m edgepipe.runtime serve``. ``runtime/`` imports nothing of the pipeline and no TensorFlow, so nothing
else is needed. Build the wheel with

    python setup_runtime.py bdist_wheel -d dist      # dist/edgepipe_runtime-<version>-py3-none-any.whl

and install it with ``pip install dist/edgepipe_runtime-*.whl`` (or ``'...whl[serve]'``), with ``-c
requirements.lock`` for the NumPy/LiteRT versions the bundles were verified with. It shares the import name
``edgepipe`` with the full distribution: install one or the other, not both, in one environment.

It builds in a fresh temporary folder (removed afterwards), never in the repository's ``build/``: setuptools
packs *everything* under ``build/lib`` into the wheel, so a ``build/`` left by the full distribution would put
the pipeline into the device wheel (and the runtime's ``egg-info`` would be mixed with the full package's).
Explicit ``build --build-base`` / ``egg_info --egg-base`` arguments still win.
"""
import atexit
import re
import shutil
import tempfile
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "edgepipe" / "__init__.py").read_text()).group(1)
RUNTIME_REQUIRES = ["numpy>=1.26,<3", "ai-edge-litert>=2.0,<3"]  # = setup.py's RUNTIME_REQUIRES
SERVE_REQUIRES = ["fastapi>=0.110", "uvicorn>=0.29"]
PACKAGES = ["edgepipe", "edgepipe.runtime", *(f"edgepipe.runtime.{p}" for p in find_packages(where="runtime"))]
PACKAGE_DIR = {"edgepipe": "edgepipe", "edgepipe.runtime": "runtime",
               **{f"edgepipe.runtime.{p}": f"runtime/{p.replace('.', '/')}" for p in find_packages(where="runtime")}}


class RuntimeOnly(build_py):
    """Leave out ``edgepipe/__main__.py``: it starts the pipeline CLI, which this distribution does not carry."""

    def find_package_modules(self, package, package_dir):
        return [m for m in super().find_package_modules(package, package_dir) if m[:2] != ("edgepipe", "__main__")]


if __name__ == "__main__":  # importable (tests read PACKAGE_DIR) without building
    scratch = tempfile.mkdtemp(prefix="edgepipe-runtime-build-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    setup(
        options={"build": {"build_base": f"{scratch}/build"}, "egg_info": {"egg_base": scratch}},
        name="edgepipe-runtime",
        version=VERSION,
        description="Load and run edgepipe bundles on a device: NumPy + LiteRT, no TensorFlow",
        python_requires=">=3.9",
        packages=PACKAGES,
        package_dir=PACKAGE_DIR,
        include_package_data=False,
        install_requires=RUNTIME_REQUIRES,
        extras_require={"serve": SERVE_REQUIRES},
        entry_points={"console_scripts": ["edgepipe-runtime=edgepipe.runtime.cli:main"]},
        cmdclass={"build_py": RuntimeOnly},
    )
