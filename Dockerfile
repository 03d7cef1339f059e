# The operator image. Build from the repository root (`make images` does, with a base made
# from Debian's packages where no registry is reachable):
#   docker build -t atomic-operator:dev .
# Multi-stage: a venv with the operator and only its dependencies, copied into a base that
# runs as a non-root user and needs no writable root filesystem (kopf keeps its state in the
# API server). The base only needs python3 with venv; both stages must use the same one.

ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml ./
# build-ca: the host's CA bundle where outbound TLS is intercepted; a build secret, so it
# never reaches a layer of either stage.
# The dependencies first, against empty packages: this layer changes only with
# pyproject.toml, so a code change rebuilds in seconds. A read-only root filesystem cannot
# take .pyc files later: both layers compile theirs now, for whichever Python the base has.
RUN --mount=type=secret,id=build-ca \
    if [ -s /run/secrets/build-ca ]; then export PIP_CERT=/run/secrets/build-ca; fi \
 && mkdir -p operator/atomic_operator agent_image/atomic_runtime \
 && touch README.md operator/atomic_operator/__init__.py agent_image/atomic_runtime/__init__.py \
 && /opt/venv/bin/pip install ".[operator]" \
 # the kubernetes client's asyncio twin (64 MB): the operator loads kubeconfigs with the
 # synchronous package only, and nothing imports kubernetes.aio
 && rm -rf /opt/venv/lib/python3*/site-packages/kubernetes/aio \
 && /opt/venv/bin/python -m compileall -q -j 0 /opt/venv/lib
COPY README.md ./
COPY operator/atomic_operator ./operator/atomic_operator
COPY agent_image/atomic_runtime ./agent_image/atomic_runtime
RUN --mount=type=secret,id=build-ca \
    if [ -s /run/secrets/build-ca ]; then export PIP_CERT=/run/secrets/build-ca; fi \
 && /opt/venv/bin/pip install --no-deps --force-reinstall . \
 # pip is not needed at run time
 && /opt/venv/bin/pip uninstall -y pip \
 && /opt/venv/bin/python -m compileall -q -j 0 /opt/venv/lib/python3*/site-packages/atomic_*

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="atomic-operator" \
      org.opencontainers.image.description="Reconciles AtomicAgents and AtomicPipelines" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# no passwd entry for 10001 on purpose: the chart runs any uid, and the operator must not
# need one (kopf's identity comes from POD_ID, see cli/operator_run.py)
USER 10001:10001
EXPOSE 8081 8090
ENTRYPOINT ["python", "-m", "atomic_operator"]
CMD ["--liveness=http://0.0.0.0:8081/healthz"]
