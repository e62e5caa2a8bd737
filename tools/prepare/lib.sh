# shellcheck shell=bash
# Helpers shared by the tools/prepare/*.sh components (sourced, not run).

log() { printf '\033[1m[prepare]\033[0m %s\n' "$*" >&2; }
die() { printf '[prepare] error: %s\n' "$*" >&2; exit 1; }

# apt_install PKG...: install the Debian packages that are missing, nothing else.
apt_install() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing Debian packages: ${missing[*]}; run as root or install them"
    log "apt-get install ${missing[*]}"
    local stamp=/var/lib/apt/periodic/ec2-inference-update
    if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +360)" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        mkdir -p "$(dirname "$stamp")" && touch "$stamp"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# stamp_fresh NAME INPUT...: true when NAME was stamped with the same hash of INPUT files.
stamp_fresh() {
    local name=$1; shift
    [ -f "$EC2I_CACHE/stamps/$name" ] && [ "$(cat "$EC2I_CACHE/stamps/$name")" = "$(cat "$@" | sha256sum)" ]
}
# stamp_write NAME INPUT...: record the hash of INPUT files for NAME.
stamp_write() {
    local name=$1; shift
    mkdir -p "$EC2I_CACHE/stamps"
    cat "$@" | sha256sum > "$EC2I_CACHE/stamps/$name"
}
