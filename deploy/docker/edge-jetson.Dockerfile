# syntax=docker/dockerfile:1
# The edge agent for a Jetson (JetPack 6, L4T r36): seamline[edge,edge-gpu] on JetPack's Python 3.10, with
# TensorRT, CUDA and their Python bindings from JetPack itself (never from PyPI, whose TensorRT wheels do not
# run on a Jetson).
#
#   docker build -f deploy/docker/edge-jetson.Dockerfile -t ghcr.io/seamline/seamline-edge:0.1.0-r36 .  # on the Jetson
#   docker run --runtime nvidia --network host -v /etc/seamline:/etc/seamline:ro \
#     -v seamline-edge:/var/lib/seamline ghcr.io/seamline/seamline-edge:0.1.0-r36
#
# /var/lib/seamline (a volume) holds the spool, the command ledger and the TensorRT engine cache, so an engine
# is built once per device and detector (engines are specific to the GPU and the TensorRT version).

ARG L4T_JETPACK=r36.4.0
FROM nvcr.io/nvidia/l4t-jetpack:${L4T_JETPACK} AS build
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-pip python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY protos/ protos/
COPY seamline/ seamline/
COPY edge/ edge/
COPY cloud/ cloud/
RUN python3 -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM nvcr.io/nvidia/l4t-jetpack:${L4T_JETPACK}
# JetPack's apt repository follows the L4T release the tag pins: python3-libnvinfer is TensorRT's Python binding
# for JetPack's Python 3.10.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-venv python3-libnvinfer \
    && rm -rf /var/lib/apt/lists/*
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/seamline/bin:$PATH
RUN useradd --system --uid 10001 --user-group --groups video --home-dir /var/lib/seamline --create-home seamline
ARG SEAMLINE_VERSION=0.1.0
COPY --from=build /wheels/ /wheels/
# --system-site-packages: the venv sees JetPack's tensorrt module; pip adds the rest (ONNX Runtime CPU,
# cuda-python, paho-mqtt, ...). PyPI has no aarch64 onnxruntime-gpu: ONNX Runtime GPU for Jetson comes from
# NVIDIA's Jetson wheels (see the README); TensorRT is the GPU runtime here.
RUN python3 -m venv --system-site-packages /opt/seamline \
    && /opt/seamline/bin/pip install --no-cache-dir "/wheels/seamline-${SEAMLINE_VERSION}-py3-none-any.whl[edge,edge-gpu]" \
    && rm -rf /wheels
USER 10001:10001
WORKDIR /var/lib/seamline
VOLUME ["/var/lib/seamline"]
CMD ["seamline", "edge", "run", "--config", "/etc/seamline/edge.yaml"]
