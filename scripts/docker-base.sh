#!/usr/bin/env bash
# Builds the Debian 12 base image every docker/Dockerfile* starts FROM, without a registry:
# mmdebstrap makes a minimal bookworm (apt, ca-certificates) from Debian's packages and
# `docker import` turns it into an image. Skips the build when the image is already there.
# Usage: scripts/docker-base.sh [IMAGE]   (default lakebase-proxy-base:bookworm)
# Needs root (mmdebstrap's chroot), mmdebstrap and a Docker engine (DOCKER_HOST is honoured).
#
# Like debian:12-slim, /usr is merged without the usrmerge package (which would bring perl),
# dpkg leaves out documentation, manual pages and translations (in this
# image and in every package later installed on it), and apt keeps no package cache.
# Where Docker Hub is reachable, any Debian 12 image does as well: docker build
# --build-arg BASE_IMAGE=debian:12-slim.
set -euo pipefail

image=${1:-lakebase-proxy-base:bookworm}

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "docker-base: $image is there" >&2
  exit 0
fi
command -v mmdebstrap >/dev/null || { echo "docker-base: mmdebstrap is not installed" >&2; exit 1; }

echo "docker-base: building $image with mmdebstrap" >&2
excludes=()
for path in '/usr/share/doc/*' '/usr/share/man/*' '/usr/share/info/*' '/usr/share/locale/*' \
            '/usr/share/groff/*' '/usr/share/lintian/*' '/usr/share/linda/*'; do
  excludes+=(--dpkgopt="path-exclude=$path")
done
# Each package's copyright file stays, as in Debian's own slim images.
excludes+=(--dpkgopt='path-include=/usr/share/doc/*/copyright')

# pipefail: a failed mmdebstrap fails the import rather than importing half a tarball.
mmdebstrap --variant=minbase --include=ca-certificates "${excludes[@]}" \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --aptopt='Dir::Cache::pkgcache ""' --aptopt='Dir::Cache::srcpkgcache ""' \
  bookworm - \
  | docker import \
      -c 'LABEL org.opencontainers.image.title="Debian 12 (bookworm) minbase for lakebase-proxy"' \
      -c 'CMD ["bash"]' - "$image" >/dev/null
echo "docker-base: $image built" >&2
