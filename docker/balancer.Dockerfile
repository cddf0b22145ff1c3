# syntax=docker/dockerfile:1
# xtts-balancer on a CUDA host: the ElevenLabs-compatible server and its GPU worker processes.
#
#   docker build -f docker/balancer.Dockerfile -t xtts-balancer .
#   docker run --rm --gpus all -p 8000:8000 -v /path/to/XTTS-v2:/model:ro \
#       -v "$PWD/balancer.yaml:/etc/xtts/balancer.yaml:ro" xtts-balancer
#
# Build context: the repository root (only packages/xtts-core and packages/xtts-balancer are used).
# Settings: /etc/xtts/balancer.yaml (see configs/balancer.example.yaml; model.directory: /model,
# service.host: 0.0.0.0) plus XTTS_BALANCER_* variables. The CUDA runtime comes from the base
# image; torch's CUDA wheel brings its own CUDA libraries, the host needs only the NVIDIA driver.

ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04

FROM ${CUDA_IMAGE} AS build
# Distribution packages follow the base image's release (pinned above by tag): exact apt
# versions would break the build each time Ubuntu's archive replaces them.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install --yes --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
COPY packages/xtts-core /src/xtts-core
COPY packages/xtts-balancer /src/xtts-balancer
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip wheel --no-cache-dir --disable-pip-version-check --no-deps \
        --wheel-dir /wheels /src/xtts-core /src/xtts-balancer

FROM ${CUDA_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    XTTS_CONFIG_FILE=/etc/xtts/balancer.yaml \
    PATH=/opt/venv/bin:$PATH
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install --yes --no-install-recommends python3 python3-venv libsndfile1 \
 && rm -rf /var/lib/apt/lists/*
# torch is pinned first so that the extra's `torch>=...` range keeps this build.
RUN python3 -m venv /opt/venv \
 && pip install torch==2.13.0 \
 && echo "torch==2.13.0" > /tmp/constraints.txt
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --constraint /tmp/constraints.txt \
        "$(ls /wheels/xtts_core-*.whl)[inference]" /wheels/xtts_balancer-*.whl \
 && rm /tmp/constraints.txt \
 && python -c "import xtts_balancer, torch; print(torch.__version__)"

# 1000 is the base image's "ubuntu" user; a numeric USER needs no passwd lookup on the host.
RUN groupadd --gid 1001 xtts && useradd --create-home --uid 1001 --gid 1001 xtts
USER 1001:1001
EXPOSE 8000
# Liveness is /health; /ready turns 200 only once a worker is warm (minutes for real weights).
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
ENTRYPOINT ["xtts-balancer", "serve"]
