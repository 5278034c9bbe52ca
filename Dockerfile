# arcray on Ray's official image. One Ray version everywhere: this FROM tag, pyproject.toml
# (ray[...]==2.60.0), arcray.RAY_VERSION, helm/arcray (rayVersion, image tag) and k8s/ (checked by
# tests/test_deploy_manifests.py). The default base is the CUDA variant (training on GPU workers);
# for a CPU-only image: --build-arg RAY_BASE=rayproject/ray:2.60.0-py311
#
#   docker build -t ghcr.io/sdss/arcray:0.1.0-ray2.60.0 .
ARG RAY_BASE=rayproject/ray:2.60.0-py311-gpu

FROM ${RAY_BASE} AS build
USER root
WORKDIR /tmp/src
COPY pyproject.toml README.md ./
COPY arcray ./arcray
RUN pip wheel --no-deps --no-cache-dir --wheel-dir /tmp/wheels .

FROM ${RAY_BASE}
LABEL org.opencontainers.image.title="arcray" \
      org.opencontainers.image.version="0.1.0" \
      io.ray.version="2.60.0"
# Ray is already in the base image at the pinned version; pip keeps it (ray[...]==2.60.0).
COPY --from=build /tmp/wheels /tmp/wheels
RUN pip install --no-cache-dir /tmp/wheels/arcray-*.whl \
    && rm -rf /tmp/wheels \
    && python -c "import ray, arcray; assert ray.__version__ == arcray.RAY_VERSION, ray.__version__"
# The jobs/ entry points (root-owned, read-only to the runtime user).
USER root
COPY jobs /app/jobs
RUN chmod -R a+rX /app
ENV ARCRAY_PROJECT_DIR=/app \
    PYTHONUNBUFFERED=1
WORKDIR /app
# Non-root (uid 1000 "ray", gid 100), numeric so Kubernetes' runAsNonRoot can verify it.
USER 1000:100
CMD ["python", "-m", "arcray", "--help"]
