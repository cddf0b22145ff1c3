# syntax=docker/dockerfile:1
# xtts-broker: the CPU-only front door for many balancers. No torch: plain xtts-core only.
#
#   docker build -f docker/broker.Dockerfile -t xtts-broker .
#   docker run --rm -p 19000:19000 -v "$PWD/broker.yaml:/etc/xtts/broker.yaml:ro" \
#       -e XTTS_BROKER_CLUSTER__SECRET="$(cat cluster.secret)" xtts-broker
#
# Build context: the repository root (only packages/xtts-core and packages/xtts-broker are used).
# Settings: /etc/xtts/broker.yaml (see configs/broker.example.yaml) plus XTTS_BROKER_* variables.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
COPY packages/xtts-core /src/xtts-core
COPY packages/xtts-broker /src/xtts-broker
RUN python -m pip wheel --no-cache-dir --disable-pip-version-check --no-deps \
        --wheel-dir /wheels /src/xtts-core /src/xtts-broker

FROM python:${PYTHON_VERSION}-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    XTTS_BROKER_CONFIG_FILE=/etc/xtts/broker.yaml
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install /wheels/xtts_core-*.whl /wheels/xtts_broker-*.whl \
 && python -c "import importlib.util as u; assert u.find_spec('torch') is None, 'torch installed'"

RUN groupadd --gid 1000 xtts && useradd --create-home --uid 1000 --gid 1000 xtts
USER 1000:1000
EXPOSE 19000
# Liveness is /health (/ready fails while no balancer is registered); 19000 = service.port.
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:19000/health', timeout=2)"]
ENTRYPOINT ["xtts-broker"]
