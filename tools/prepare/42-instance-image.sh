# shellcheck shell=bash disable=SC2034  # sourced by tools/prepare.sh, which reads PREPARE_GROUPS
# The booted instance of the boot tests (testkit/instance, tests/instance): a Debian 12
# system image with systemd as PID 1, Debian's cloud-init (NoCloud seed), docker.io and
# every package the instance scripts install (the instance has no route to a mirror), the
# AWS CLI v1 from PyPI (Debian's awscli is too old for `endpoint_url` in ~/.aws/config),
# and the harness's own CA (testkit/instance signs the registry's and pebble's TLS
# certificates with it). Made with debootstrap like 41-base-image.sh; the tarball is cached
# under $EC2I_CACHE/instance-image/ and the image is labelled with the recipe's hash.
#
# What the image adds for the container, and nothing else (the shipped scripts run as they
# are): cloud-init's datasource list and no cloud-init network config (the harness owns
# the network namespace), and masks for units that cannot run in a container.
PREPARE_GROUPS="test"

INSTANCE_IMAGE_TAG="${INSTANCE_IMAGE_TAG:-ec2i-instance:debian12}"
INSTANCE_IMAGE_LABEL=org.ec2-inference.instance-image
# debootstrap lays the base (its resolver does not follow virtual packages, so apt-get in
# the chroot installs the rest): what setup-packages.sh and setup-docker.sh install on the
# instance, cloud-init, and what the harness needs inside (python3-venv for the AWS CLI).
INSTANCE_BASE_PACKAGES=systemd,systemd-sysv,ca-certificates
INSTANCE_PACKAGES="dbus cloud-init docker.io nginx certbot curl jq openssl util-linux e2fsprogs bind9-dnsutils iproute2 iptables procps python3-venv locales"
AWSCLI_VERSION=1.46.2
INSTANCE_CA_DIR="$EC2I_CACHE/instance-ca"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

instance_image_recipe() {
    { declare -f make_instance_rootfs configure_instance_rootfs import_instance_image
      echo "$INSTANCE_BASE_PACKAGES $INSTANCE_PACKAGES $AWSCLI_VERSION $DEBIAN_MIRROR"
      cat "$INSTANCE_CA_DIR/ca.crt" /usr/local/share/ca-certificates/*.crt 2>/dev/null; } | sha256sum | cut -c1-16
}

# The harness CA: made once per machine, kept in the cache (a test CA; its key never
# leaves the cache directory).
ensure_instance_ca() {
    [ -f "$INSTANCE_CA_DIR/ca.crt" ] && [ -f "$INSTANCE_CA_DIR/ca.key" ] && return 0
    mkdir -p "$INSTANCE_CA_DIR"
    chmod 0700 "$INSTANCE_CA_DIR"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj "/CN=ec2-inference instance harness CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$INSTANCE_CA_DIR/ca.key" -out "$INSTANCE_CA_DIR/ca.crt" >/dev/null 2>&1 \
        || die "openssl could not make the instance harness CA"
}

prepare() {
    command -v docker >/dev/null || die "docker is missing; 40-docker.sh installs it"
    ensure_instance_ca
    local recipe label
    recipe="$(instance_image_recipe)"
    if label="$(docker image inspect --format "{{index .Config.Labels \"$INSTANCE_IMAGE_LABEL\"}}" "$INSTANCE_IMAGE_TAG" 2>/dev/null)" \
        && [ "$label" = "$recipe" ]; then
        return 0
    fi
    local tarball="$EC2I_CACHE/instance-image/debian12-instance-$recipe.tar"
    [ -f "$tarball" ] || make_instance_rootfs "$tarball"
    import_instance_image "$tarball" "$recipe"
}

import_instance_image() {
    local tarball=$1 recipe=$2
    log "docker import $tarball as $INSTANCE_IMAGE_TAG"
    docker import \
        --change "LABEL $INSTANCE_IMAGE_LABEL=$recipe" \
        --change 'CMD ["/lib/systemd/systemd"]' \
        "$tarball" "$INSTANCE_IMAGE_TAG" >/dev/null
}

make_instance_rootfs() {
    local tarball=$1
    apt_install debootstrap
    local work
    work="$(mktemp -d "$EC2I_CACHE/instance-image.XXXXXX")"
    # shellcheck disable=SC2064  # expand now: the trap must remove this run's directory
    trap "umount '$work/rootfs/proc' 2>/dev/null; rm -rf '$work'" RETURN EXIT
    log "debootstrap bookworm for the instance image from $DEBIAN_MIRROR (a few minutes)"
    debootstrap --variant=minbase --include="$INSTANCE_BASE_PACKAGES" bookworm "$work/rootfs" "$DEBIAN_MIRROR" \
        >"$work/debootstrap.log" 2>&1 || { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
    mount -t proc proc "$work/rootfs/proc"
    configure_instance_rootfs "$work/rootfs"
    umount "$work/rootfs/proc"
    mkdir -p "$(dirname "$tarball")"
    tar --numeric-owner -C "$work/rootfs" -cf "$tarball.part" .
    mv "$tarball.part" "$tarball"
    find "$(dirname "$tarball")" -maxdepth 1 -name 'debian12-instance-*.tar' ! -path "$tarball" -delete
}

configure_instance_rootfs() {
    local rootfs=$1
    # No service starts inside the chroot while packages install.
    printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
    chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
    chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
    log "apt-get install in the instance image: $INSTANCE_PACKAGES"
    # shellcheck disable=SC2086  # a list of package names
    chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive sh -c \
        "apt-get update -qq && apt-get install -y -qq --no-install-recommends $INSTANCE_PACKAGES" \
        >"$rootfs/../apt.log" 2>&1 || { tail -n 20 "$rootfs/../apt.log" >&2; die "apt-get install in the instance image failed"; }
    rm -f "$rootfs/usr/sbin/policy-rc.d"
    # The locale cloud-init sets by default (Ubuntu's AMIs have it).
    sed -i 's/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/' "$rootfs/etc/locale.gen"
    chroot "$rootfs" locale-gen >/dev/null
    cp "$INSTANCE_CA_DIR/ca.crt" "$rootfs/usr/local/share/ca-certificates/ec2i-instance-harness-ca.crt"
    chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
    # The AWS CLI v1 in its own venv (pip reaches PyPI through the host's network).
    chroot "$rootfs" python3 -m venv /opt/aws-cli
    chroot "$rootfs" env PIP_CERT=/etc/ssl/certs/ca-certificates.crt /opt/aws-cli/bin/pip install -q \
        --disable-pip-version-check "awscli==$AWSCLI_VERSION" >/dev/null || die "pip install awscli failed"
    ln -sf /opt/aws-cli/bin/aws "$rootfs/usr/local/bin/aws"
    # cloud-init: the NoCloud seed the harness mounts; the network is the harness's.
    cat >"$rootfs/etc/cloud/cloud.cfg.d/90-ec2i-instance-harness.cfg" <<'EOF'
# ec2-inference instance harness: user-data comes from /var/lib/cloud/seed/nocloud/ (the
# bootstrap Terraform rendered); the network namespace is configured by the harness.
datasource_list: [ NoCloud, None ]
network: {config: disabled}
EOF
    # Units that need what a container does not have (a console to log in on, udev, the
    # kernel's module loader): masked, so that `systemctl --failed` speaks of our units.
    local unit
    for unit in getty@tty1.service serial-getty@ttyS0.service console-getty.service \
        systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service \
        systemd-remount-fs.service sys-kernel-config.mount sys-kernel-debug.mount \
        sys-kernel-tracing.mount apt-daily.timer apt-daily-upgrade.timer; do
        ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
    done
    : >"$rootfs/etc/machine-id"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
}
