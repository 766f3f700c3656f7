#!/usr/bin/env bash
# Makes the Debian base image the Dockerfile builds on, for hosts that cannot
# pull images (no registry): debootstrap a minimal bookworm and `docker import`
# it under the name the Dockerfile uses (default debian:bookworm-slim). Hosts
# with a registry never need this; they pull the official image.
#
# The image also carries the runtime's shared libraries (libssl3,
# ca-certificates), so the Dockerfile's runtime stage needs no network either.
# Usage: docker/bootstrap-base.sh [TAG]     (as root; DEBIAN_MIRROR to override)
set -euo pipefail
tag=${1:-debian:bookworm-slim}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag already exists"
  exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

root=$(mktemp -d /var/tmp/digsig-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "debootstrapping bookworm (minbase) from $mirror into $root ..."
debootstrap --variant=minbase --include=ca-certificates,libssl3 bookworm "$root" "$mirror" >"$root.log" 2>&1 \
  || { tail -30 "$root.log" >&2; exit 1; }
rm -f "$root.log"
# Trim what the official slim image trims (docs, man pages, translations, apt
# caches), and tell dpkg to keep them out of later installs too.
cat > "$root"/etc/dpkg/dpkg.cfg.d/slim <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
find "$root"/usr/share/doc -mindepth 2 ! -name copyright ! -type d -delete
find "$root"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
       "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*
tar --numeric-owner -C "$root" -c . | docker import --change 'CMD ["bash"]' - "$tag" >/dev/null
echo "made $tag: $(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')"
