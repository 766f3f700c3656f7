#!/usr/bin/env bash
# Builds digsig's images on a host that cannot pull images: makes the Debian
# base image locally (docker/bootstrap-base.sh), builds the Rust workspace once
# on the host, and feeds those binaries to the Dockerfile's runtime stages
# (the same stages the from-source build uses).
# Usage: docker/build-prebuilt.sh            (then: docker-compose up -d)
set -euo pipefail
cd "$(dirname "$0")/.."
docker/bootstrap-base.sh
cargo build --release --locked -p gateway -p svc-kmod -p svc-optee -p svc-update -p svc-imx
mkdir -p docker/prebuilt
cp target/release/digsigserver target/release/svc-kmod target/release/svc-optee target/release/svc-update \
   target/release/svc-imx docker/prebuilt/
# svc-imx's cst back end: built here, where a compiler and libssl-dev are.
svc-imx/cst/install-cst --backend-only docker/prebuilt/libdigsig-cst-backend.so
strip docker/prebuilt/*   # the base image has no binutils; strip here
export DIGSIG_BUILDER_IMAGE=debian:bookworm-slim DIGSIG_PREBUILT=docker/prebuilt
docker/compose build
