"""Packaging for edgepipe.

The source tree keeps the brief's top-level folders (``pipeline/``, ``components/``, ``models/``, ``data/``,
``runtime/``, ``configs/``) but installs them under one import name, ``edgepipe``, so nothing generic such as
``pipeline`` or ``models`` lands in site-packages.
"""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
SUBPACKAGES = ["pipeline", "components", "models", "data", "runtime", "configs", "tasks", "ui"]


def _packages():
    packages, package_dir = ["edgepipe"], {"edgepipe": "edgepipe"}
    for top in SUBPACKAGES:
        package_dir[f"edgepipe.{top}"] = top
        packages.append(f"edgepipe.{top}")
        for sub in find_packages(where=top):
            packages.append(f"edgepipe.{top}.{sub}")
            package_dir[f"edgepipe.{top}.{sub}"] = f"{top}/{sub.replace('.', '/')}"
    return packages, package_dir


PACKAGES, PACKAGE_DIR = _packages()

# Versions follow the stack the project is checked on; requirements.lock pins the whole tree for CI and Docker.
RUNTIME_REQUIRES = ["numpy>=1.26,<3", "ai-edge-litert>=2.0,<3"]
INSTALL_REQUIRES = RUNTIME_REQUIRES + [
    "tensorflow==2.21.*",
    "tf-keras==2.21.*",
    "tensorflow-model-optimization==0.8.*",
    "tensorflow-datasets==4.9.*",
    "importlib-resources>=6",  # tensorflow-datasets preparing a dataset (etils.epath); its metadata asks only < 3.9
    "apache-beam==2.77.*",
    "google-crc32c>=1.5",  # Beam's TFRecord writer needs a CRC32C implementation
    "pydantic>=2.6,<3",
    "PyYAML>=6",
    "matplotlib>=3.8",  # the run report's plots (components/report)
    "tensorboard==2.21.*",  # TensorBoard training logs (TF 2.21 no longer pulls it in; tf.summary needs it)
    "scikit-learn>=1.4",  # bundled offline datasets (digits) for the model-family configs
]
# DQN (models/dqn.py): TF-Agents' own metadata pins typing_extensions==4.5.0, gym<=0.23.0, pygame==2.1.3 and
# tensorflow-probability~=0.23, which conflict with pydantic 2 and TF 2.21. So this extra lists what TF-Agents really
# needs at run time, in versions that work with TF 2.21 + tf_keras, and tf-agents itself is installed with --no-deps
# (`make rl`). gym 0.23's CartPole imports pygame at import time, hence pygame.
RL_REQUIRES = ["gin-config==0.5.0", "tensorflow-probability==0.25.0", "decorator>=5", "cloudpickle>=2",
               "gym==0.23.1", "gym-notices==0.1.0", "pygame==2.6.1"]
# `edgepipe serve`: the runtime plus a small HTTP service (runtime/server.py).
SERVE_REQUIRES = RUNTIME_REQUIRES + ["fastapi>=0.110", "uvicorn>=0.29"]
# `edgepipe ui`: the browser front end (ui/): server-rendered pages, uploads; selenium drives its browser tests.
UI_REQUIRES = ["fastapi>=0.110", "uvicorn>=0.29", "jinja2>=3.1", "python-multipart>=0.0.9"]
# The microcontroller check (components/export/micro.py): the int8 model run under TensorFlow Lite Micro's Python
# interpreter, its arena recorded. Only dev builds are published (0.dev<date>), so the lock pins one.
MICRO_REQUIRES = ["tflite-micro>=0.dev0"]
# The budget search (pipeline/search.py, `search.trials`): Optuna's seeded TPE sampler over the declared space.
SEARCH_REQUIRES = ["optuna>=4,<5"]

setup(
    name="edgepipe",
    version="0.1.0",
    description="TFX-style pipeline from raw data to a verified TFLite bundle",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    package_data={"edgepipe.configs": ["*.yaml"], "edgepipe.data": ["default/*"],
                  "edgepipe.pipeline": ["scaffold_template/*.tmpl", "scaffold_template/*/*.tmpl"],  # edgepipe init
                  "edgepipe.ui": ["templates/*.html", "static/*"]},
    include_package_data=False,
    install_requires=INSTALL_REQUIRES,
    extras_require={
        # kfp in test: the compiled Kubeflow/Vertex spec is executed with kfp.local; dask: the runner-parity test
        "test": ["pytest>=8", "hypothesis>=6", "kfp==2.17.*", "apache-beam[dask]==2.77.*", "selenium>=4.20", "httpx2>=2"],
        # What edgepipe.runtime needs. Extras only add to install_requires, so a device without TensorFlow installs
        # `pip install --no-deps . && pip install numpy ai-edge-litert` (the Dockerfile's runtime target does).
        "runtime": RUNTIME_REQUIRES,
        "serve": SERVE_REQUIRES,
        "ui": UI_REQUIRES,
        "micro": MICRO_REQUIRES,
        "search": SEARCH_REQUIRES,
        "rl": RL_REQUIRES,  # + `pip install --no-deps tf-agents==0.19.0` (see RL_REQUIRES, `make rl`)
        # compile (kfp), submit (aiplatform) and run the Beam components on Dataflow (apache-beam[gcp])
        "kfp": ["kfp==2.17.*"],
        "gcp": ["apache-beam[gcp]==2.77.*"],
        "cloud": ["kfp==2.17.*", "google-cloud-aiplatform>=1.60,<2", "apache-beam[gcp]==2.77.*"],
    },
    entry_points={"console_scripts": ["edgepipe=edgepipe.pipeline.cli:main"]},
)
