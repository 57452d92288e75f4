# syntax=docker/dockerfile:1
# anchorwatch container image: `anchorwatch serve` by default; `anchorwatch proxy ...` as a sidecar.
#   docker build -t anchorwatch .
#   docker run -p 8080:8080 -v anchorwatch-data:/var/lib/anchorwatch anchorwatch
# Guide: docs/deploy.md. Checked statically by tests/deploy.rs (ports, paths, flags, config).

ARG RUST_VERSION=1.95
ARG PYTHON_VERSION=3.12
ARG DEBIAN_RELEASE=bookworm

# Stage 1: the release binary.
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY . .
# The cache mounts keep the registry and compiled dependencies between local builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin anchorwatch \
    && install -m 0755 target/release/anchorwatch /usr/local/bin/anchorwatch

# Stage 2: the ONNX Runtime shared library the predictor loads, from the same pinned `onnxruntime`
# wheel the tests use (tests/requirements.txt), for this image's architecture. Only the library is
# kept, no Python.
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS onnxruntime
COPY tests/requirements.txt /tmp/requirements.txt
RUN pin="$(grep -E '^onnxruntime==' /tmp/requirements.txt)" \
    && pip install --no-cache-dir --no-deps --target /tmp/wheel "$pin" \
    && mkdir -p /opt/onnxruntime \
    && cp /tmp/wheel/onnxruntime/capi/libonnxruntime.so.* /opt/onnxruntime/libonnxruntime.so \
    && cp /tmp/wheel/onnxruntime/capi/libonnxruntime_providers_shared.so /opt/onnxruntime/ \
    && echo "$pin" > /opt/onnxruntime/VERSION

# Stage 3: the runtime image.
FROM debian:${DEBIAN_RELEASE}-slim
# libstdc++ for ONNX Runtime; curl for the healthcheck; CA certificates for HTTPS receivers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl libstdc++6 \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 anchorwatch \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/anchorwatch --no-create-home anchorwatch \
    && mkdir -p /var/lib/anchorwatch /etc/anchorwatch \
    && chown 10001:10001 /var/lib/anchorwatch
COPY --from=build /usr/local/bin/anchorwatch /usr/local/bin/anchorwatch
COPY --from=onnxruntime /opt/onnxruntime /opt/onnxruntime
COPY deploy/docker/anchorwatch.toml /etc/anchorwatch/anchorwatch.toml
# First place anchorwatch looks for ONNX Runtime (docs/models.md, "ONNX Runtime").
ENV ORT_DYLIB_PATH=/opt/onnxruntime/libonnxruntime.so
ENV ANCHORWATCH_LOG_FORMAT=json
USER 10001:10001
WORKDIR /var/lib/anchorwatch
VOLUME ["/var/lib/anchorwatch"]
# 8080: `serve` (API, /metrics, /healthz, /readyz; server.listen in deploy/docker/anchorwatch.toml).
# 8081 and 9464: `proxy` as a sidecar (--listen, and --metrics-listen for /metrics and the probes).
EXPOSE 8080 8081 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["anchorwatch"]
CMD ["serve", "--config", "/etc/anchorwatch/anchorwatch.toml"]
