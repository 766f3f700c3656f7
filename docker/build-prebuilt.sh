#!/usr/bin/env bash
# Builds digsig's images on a host that cannot pull images: makes the Debian
# base image locally (docker/bootstrap-base.sh), builds the Rust workspace once
# on the host, and feeds those binaries to the Dockerfile's runtime stages
# (the same stages the from-source build uses).
# Usage: docker/build-prebuilt.sh            (then: docker-compose up -d)
set -euo pipefail
cd "$(dirname "$0")/.."
docker/bootstrap-base.sh
cargo build --release --locked -p gateway -p svc-kmod -p svc-optee -p svc-update
mkdir -p docker/prebuilt
cp target/release/digsigserver target/release/svc-kmod target/release/svc-optee target/release/svc-update docker/prebuilt/
strip docker/prebuilt/*   # the base image has no binutils; strip here
export DIGSIG_BUILDER_IMAGE=debian:bookworm-slim DIGSIG_PREBUILT=docker/prebuilt
docker/compose build
