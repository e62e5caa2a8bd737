# shellcheck shell=bash disable=SC2034  # sourced by tools/prepare.sh, which reads PREPARE_GROUPS
# The base image app/Dockerfile builds FROM (ARG BASE_IMAGE=python:3.12-slim). Docker Hub
# is out of reach here, so a Debian 12 root filesystem is made with debootstrap from the
# machine's apt mirror, given the machine's CA certificates (pip inside `docker build`
# goes through the same TLS-inspecting egress as the host) and imported under the name
# the Dockerfile asks for. The tarball is cached and the image is labelled with the
# recipe's hash, so a second run is a `docker image inspect` and nothing else.
# Debian 12's python3 is 3.11, not 3.12: what the Dockerfile relies on is python3 with
# venv and CA certificates, which this image has. A real python:3.12-slim already on the
# machine (pulled elsewhere) is left alone.
PREPARE_GROUPS="test"

BASE_IMAGE_TAG="${BASE_IMAGE_TAG:-python:3.12-slim}"
BASE_IMAGE_LABEL=org.ec2-inference.base-image
BASE_IMAGE_PACKAGES=ca-certificates,python3,python3-venv
DEBIAN_MIRROR="${DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

base_image_recipe() {
    # Everything that decides the image: the code that makes and imports it (without its
    # comments, as bash prints it), the packages, the mirror and the machine's CAs.
    { declare -f make_base_rootfs import_base_image; echo "$BASE_IMAGE_PACKAGES $DEBIAN_MIRROR"
      cat /usr/local/share/ca-certificates/*.crt 2>/dev/null; } | sha256sum | cut -c1-16
}

prepare() {
    command -v docker >/dev/null || die "docker is missing; 40-docker.sh installs it"
    local recipe label
    recipe="$(base_image_recipe)"
    if label="$(docker image inspect --format "{{index .Config.Labels \"$BASE_IMAGE_LABEL\"}}" "$BASE_IMAGE_TAG" 2>/dev/null)"; then
        if [ "$label" = "$recipe" ]; then
            return 0
        elif [ -z "$label" ] || [ "$label" = "<no value>" ]; then
            log "$BASE_IMAGE_TAG exists and was not made here; using it as it is"
            return 0
        fi
    fi
    local tarball="$EC2I_CACHE/base-image/debian12-python-$recipe.tar"
    [ -f "$tarball" ] || make_base_rootfs "$tarball"
    import_base_image "$tarball" "$recipe"
}

import_base_image() {
    local tarball=$1 recipe=$2
    log "docker import $tarball as $BASE_IMAGE_TAG"
    docker import \
        --change "LABEL $BASE_IMAGE_LABEL=$recipe" \
        --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8" \
        --change 'CMD ["python3"]' \
        "$tarball" "$BASE_IMAGE_TAG" >/dev/null
}

make_base_rootfs() {
    local tarball=$1
    apt_install debootstrap
    local work
    work="$(mktemp -d "$EC2I_CACHE/base-image.XXXXXX")"
    # shellcheck disable=SC2064  # expand now: the trap must remove this run's directory
    trap "rm -rf '$work'" RETURN
    log "debootstrap bookworm ($BASE_IMAGE_PACKAGES) from $DEBIAN_MIRROR"
    debootstrap --variant=minbase --include="$BASE_IMAGE_PACKAGES" bookworm "$work/rootfs" "$DEBIAN_MIRROR" \
        >"$work/debootstrap.log" 2>&1 || { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
    local rootfs=$work/rootfs
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
    chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
    # What a slim image leaves out: package caches, docs, man pages, locales.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
        "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*.log "$rootfs"/var/cache/debconf/*-old
    mkdir -p "$(dirname "$tarball")"
    tar --numeric-owner -C "$rootfs" -cf "$tarball.part" .
    mv "$tarball.part" "$tarball"
    # Older recipes' tarballs are dead weight.
    find "$(dirname "$tarball")" -maxdepth 1 -name 'debian12-python-*.tar' ! -path "$tarball" -delete
}
