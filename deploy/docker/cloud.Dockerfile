# syntax=docker/dockerfile:1
# The cloud image: the classifier service, the review console and the migration step (seamline[cloud,review]).
# vLLM runs in its own image (vllm/vllm-openai); this one holds no model and needs no GPU.
#
#   docker build -f deploy/docker/cloud.Dockerfile -t ghcr.io/seamline/seamline-cloud:0.1.0 .   # from the repo root
#
# Commands: seamline cloud serve | seamline review serve | seamline cloud migrate, each with
# --config /etc/seamline/seamline.yaml (deploy/compose/ and deploy/helm/ mount it).

FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
# What the wheel is built from (setup.py compiles protos/ into the contract stubs).
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY protos/ protos/
COPY seamline/ seamline/
COPY edge/ edge/
COPY cloud/ cloud/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/seamline/bin:$PATH
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/seamline --create-home seamline
ARG SEAMLINE_VERSION=0.1.0
COPY --from=build /wheels/ /wheels/
RUN python -m venv /opt/seamline \
    && /opt/seamline/bin/pip install --no-cache-dir "/wheels/seamline-${SEAMLINE_VERSION}-py3-none-any.whl[cloud,review]" \
    && rm -rf /wheels
USER 10001:10001
WORKDIR /var/lib/seamline
# gRPC (edges), gRPC health (plaintext, probes), the review console, Prometheus metrics.
EXPOSE 50051 50052 8080 9464
CMD ["seamline", "cloud", "serve", "--config", "/etc/seamline/seamline.yaml"]
