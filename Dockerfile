# The operator image. Multi-stage: build the wheel and a venv with only the operator's
# dependencies, then copy the venv into a slim image that runs as a non-root user and
# needs no writable root filesystem (kopf keeps its state in the API server).
FROM python:3.12-slim AS build
WORKDIR /src
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir --upgrade pip build
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY agent_image/atomic_runtime ./agent_image/atomic_runtime
RUN /opt/venv/bin/python -m build --wheel --outdir /dist . \
 && /opt/venv/bin/pip install --no-cache-dir "$(ls /dist/*.whl)[operator]"

FROM python:3.12-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
EXPOSE 8081 8090
ENTRYPOINT ["python", "-m", "atomic_operator"]
CMD ["--liveness=http://0.0.0.0:8081/healthz"]
