#!/usr/bin/env bash
# Make a Python base image from Debian's packages, for machines that reach no container
# registry: debootstrap a minimal root filesystem and `docker import` it.
#
#   hack/debian-base.sh TAG [SUITE]
#
# Needs root (debootstrap), a running Docker engine (DOCKER_HOST honoured) and Debian's
# package mirror. The result has python3, python3-venv and ca-certificates and nothing
# else; about 45 s on a 2-core machine. Documentation, man pages and apt's lists are
# dropped: no image built on it runs apt.
set -euo pipefail

tag=${1:?usage: hack/debian-base.sh TAG [SUITE]}
suite=${2:-trixie}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

root=$(mktemp -d /tmp/atomic-base.XXXXXX)
trap 'rm -rf "$root"' EXIT

debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$suite" "$root" "$mirror" >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
rm -f "$root.log"
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
    "$root"/var/log/* "$root"/tmp/*
tar --numeric-owner -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$tag" >/dev/null
echo "$tag"
