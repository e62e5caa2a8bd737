# shellcheck shell=bash disable=SC2034  # sourced by tools/prepare.sh, which reads PREPARE_GROUPS
# Debian's real cloud-init systemd units for tools/lint_templates.py, which verifies the
# instance's unit set next to them (an ordering cycle with cloud-final.service is what the
# boot tests found). The .deb is downloaded with apt and only unpacked, never installed:
# $EC2I_CACHE/cloud-init-units/lib/systemd/system/cloud-*.{service,target}, and VERSION.
PREPARE_GROUPS="test"

CLOUD_INIT_UNITS="$EC2I_CACHE/cloud-init-units"

prepare() {
    local version
    version="$(apt-cache policy cloud-init 2>/dev/null | awk '/Candidate:/ {print $2}')"
    if [ -z "$version" ] || [ "$version" = "(none)" ]; then
        apt-get update -qq
        version="$(apt-cache policy cloud-init | awk '/Candidate:/ {print $2}')"
    fi
    if [ -z "$version" ] || [ "$version" = "(none)" ]; then
        die "apt knows no cloud-init package"
    fi
    [ "$(cat "$CLOUD_INIT_UNITS/VERSION" 2>/dev/null)" = "$version" ] && return 0
    local work
    work="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand now: the trap must remove this run's directory
    trap "rm -rf '$work'" RETURN
    log "unpacking Debian's cloud-init $version units into $CLOUD_INIT_UNITS"
    (cd "$work" && apt-get download -q "cloud-init=$version" >/dev/null 2>&1) \
        || die "apt-get download cloud-init=$version failed"
    dpkg-deb -x "$work"/cloud-init_*.deb "$work/root"
    rm -rf "$CLOUD_INIT_UNITS"
    mkdir -p "$CLOUD_INIT_UNITS/lib/systemd"
    cp -a "$work/root/lib/systemd/system" "$CLOUD_INIT_UNITS/lib/systemd/"
    echo "$version" >"$CLOUD_INIT_UNITS/VERSION"
}
