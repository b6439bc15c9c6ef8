# syntax=docker/dockerfile:1
# Two targets:
#   docker build -t edgepipe .                      full pipeline image (also what Kubeflow/Vertex tasks run)
#   docker build --target runtime -t edgepipe-rt .  small image that only loads and serves a bundle
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system edgepipe && useradd --system --gid edgepipe --create-home --home-dir /home/edgepipe edgepipe
WORKDIR /opt/edgepipe

FROM base AS runtime
COPY setup.py README.md requirements.lock ./
COPY edgepipe/ edgepipe/
COPY pipeline/ pipeline/
COPY components/ components/
COPY models/ models/
COPY data/ data/
COPY runtime/ runtime/
COPY configs/ configs/
RUN pip install --no-deps . && pip install -c requirements.lock numpy ai-edge-litert
USER edgepipe
WORKDIR /home/edgepipe
ENTRYPOINT ["python", "-m", "edgepipe.runtime"]

FROM base AS pipeline
COPY requirements.lock ./
RUN pip install -r requirements.lock
COPY setup.py README.md ./
COPY edgepipe/ edgepipe/
COPY pipeline/ pipeline/
COPY components/ components/
COPY models/ models/
COPY data/ data/
COPY runtime/ runtime/
COPY configs/ configs/
RUN pip install --no-deps .
USER edgepipe
WORKDIR /home/edgepipe
ENTRYPOINT ["edgepipe"]
CMD ["run", "--output", "/home/edgepipe/bundle"]
