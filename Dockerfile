# syntax=docker/dockerfile:1
# Two targets:
#   docker build -t edgepipe .                      full pipeline image (also what Kubeflow/Vertex tasks run)
#   docker build --target runtime -t edgepipe-rt .  small image that only loads and serves a bundle
# Optional extras for the pipeline image: --build-arg EXTRAS=gcp (Beam on Dataflow), EXTRAS=cloud (also submit).
# The base is pinned to an exact patch release; pin a digest too (python:3.11.11-slim-bookworm@sha256:...) where
# builds must be bit-for-bit repeatable.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system edgepipe && useradd --system --gid edgepipe --create-home --home-dir /home/edgepipe edgepipe
WORKDIR /opt/edgepipe

FROM base AS runtime-wheel
# The runtime-only distribution (setup_runtime.py -> edgepipe-runtime): edgepipe/__init__.py + runtime/, no TensorFlow.
COPY setup_runtime.py ./
COPY edgepipe/__init__.py edgepipe/
COPY runtime/ runtime/
RUN pip install setuptools==84.2.1 wheel==0.48.0 && python setup_runtime.py -q bdist_wheel -d /tmp/wheels

FROM base AS runtime
COPY requirements.lock ./
COPY --from=runtime-wheel /tmp/wheels/ /tmp/wheels/
# One command, as on a board: NumPy + LiteRT, and FastAPI + uvicorn for `serve` (the wheel's serve extra).
RUN pip install -c requirements.lock "$(ls /tmp/wheels/edgepipe_runtime-*.whl)[serve]" && rm -rf /tmp/wheels
USER edgepipe
WORKDIR /home/edgepipe
ENTRYPOINT ["python", "-m", "edgepipe.runtime"]

FROM base AS pipeline
# Dependencies first, from the lock (kfp included: Kubeflow/Vertex tasks start with `python3 -m kfp.dsl.executor_main`),
# so editing the sources does not reinstall TensorFlow.
COPY requirements.lock ./
RUN pip install -r requirements.lock
# The sources stay here, owned by the runtime user: Beam's --setup_file (Dataflow) builds an sdist from
# /opt/edgepipe/setup.py inside a task, which writes next to it (see pipeline/beam_options.py).
ENV EDGEPIPE_SOURCE_DIR=/opt/edgepipe
COPY --chown=edgepipe:edgepipe setup.py README.md ./
COPY --chown=edgepipe:edgepipe edgepipe/ edgepipe/
COPY --chown=edgepipe:edgepipe pipeline/ pipeline/
COPY --chown=edgepipe:edgepipe components/ components/
COPY --chown=edgepipe:edgepipe models/ models/
COPY --chown=edgepipe:edgepipe data/ data/
COPY --chown=edgepipe:edgepipe runtime/ runtime/
COPY --chown=edgepipe:edgepipe configs/ configs/
COPY --chown=edgepipe:edgepipe tasks/ tasks/
COPY --chown=edgepipe:edgepipe ui/ ui/
ARG EXTRAS=""
RUN pip install --no-deps . \
 && if [ -n "$EXTRAS" ]; then pip install -c requirements.lock ".[$EXTRAS]"; fi \
 && rm -rf build *.egg-info \
 && python -c "import kfp, edgepipe.pipeline.remote, edgepipe.pipeline.cli" \
 && chown edgepipe:edgepipe /opt/edgepipe \
 && mkdir -p /gcs /minio /s3 && chown edgepipe:edgepipe /gcs /minio /s3
# (/gcs, /minio, /s3: where KFP maps artifact URIs to local paths; writable so a non-root task can use them
#  where the orchestrator mounts nothing there. Vertex AI mounts Cloud Storage FUSE over /gcs.)
USER edgepipe
WORKDIR /home/edgepipe
ENTRYPOINT ["edgepipe"]
CMD ["run", "--output", "/home/edgepipe/bundle"]
