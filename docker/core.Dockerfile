# syntax=docker/dockerfile:1
# xtts-core with its inference extra on CPU torch 2.13.0; runs the demo.
#
#   docker build -f docker/core.Dockerfile -t xtts-core .
#   docker run --rm -v "$PWD/out:/data" xtts-core                       # random weights: noise
#   docker run --rm -v "$PWD/out:/data" -v /path/to/XTTS-v2:/model:ro xtts-core \
#       --model-dir /model --text "Hello there." --output /data/hello.wav
#
# Build context: the repository root (only packages/xtts-core is copied in).

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
COPY packages/xtts-core /src/xtts-core
RUN python -m pip wheel --no-cache-dir --disable-pip-version-check --no-deps \
        --wheel-dir /wheels /src/xtts-core

FROM python:${PYTHON_VERSION}-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# CPU torch from the PyTorch CPU index; the constraint stops the extra's `torch>=…` range from
# ever replacing it with a (multi-GB) CUDA build from PyPI.
RUN python -m pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0+cpu \
 && echo "torch==2.13.0+cpu" > /tmp/constraints.txt
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --constraint /tmp/constraints.txt \
        "$(ls /wheels/xtts_core-*.whl)[inference]" \
 && rm /tmp/constraints.txt \
 && python -c "import torch, xtts_core; assert torch.version.cuda is None, torch.version.cuda"

RUN groupadd --gid 1000 xtts && useradd --create-home --uid 1000 --gid 1000 xtts \
 && mkdir /data && chown xtts:xtts /data
USER 1000:1000
WORKDIR /data
ENTRYPOINT ["python", "-m", "xtts_core.demo"]
