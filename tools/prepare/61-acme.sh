# shellcheck shell=bash disable=SC2034  # sourced by tools/prepare.sh, which reads PREPARE_GROUPS
# The HTTPS end-to-end test (tests/integration_tls): pebble and pebble-challtestsrv
# (Debian's `pebble` package ships both binaries), certbot and nginx. The test starts
# them itself on free loopback ports and stops them by PID.
PREPARE_GROUPS="test"

prepare() {
    apt_install pebble certbot nginx
    local tool
    for tool in pebble pebble-challtestsrv certbot nginx; do
        command -v "$tool" >/dev/null || die "$tool is missing after install"
    done
}
