#!/usr/bin/env bash
# Builds digsig's images on a host that cannot pull images: makes the Debian
# base image locally (docker/bootstrap-base.sh), builds the Rust workspace once
# on the host, and feeds those binaries to the Dockerfile's runtime stages
# (the same stages the from-source build uses).
# Usage: docker/build-prebuilt.sh            (then: docker-compose up -d)
set -euo pipefail
cd "$(dirname "$0")/.."
docker/bootstrap-base.sh
# One binary: the gateway, and every service when named after it.
cargo build --release --locked -p gateway --bin digsigserver
mkdir -p docker/prebuilt
rm -f docker/prebuilt/*
cp target/release/digsigserver docker/prebuilt/
# svc-imx's cst back end: built here, where a compiler and libssl-dev are.
svc-imx/cst/install-cst --backend-only docker/prebuilt/libdigsig-cst-backend.so
strip docker/prebuilt/*   # the base image has no binutils; strip here
export DIGSIG_BUILDER_IMAGE=debian:bookworm-slim DIGSIG_PREBUILT=docker/prebuilt
docker/compose build
# Each image carries the version (compose's tag) and latest.
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
for image in gateway svc-kmod svc-optee svc-update svc-imx svc-tegra; do
  docker tag "digsig/$image:${DIGSIG_TAG:-$version}" "digsig/$image:latest"
done
