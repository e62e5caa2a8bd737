# shellcheck shell=bash disable=SC2034  # sourced by tools/prepare.sh, which reads PREPARE_GROUPS
# Linters for the rendered instance artifacts (tools/lint_templates.py): shellcheck,
# nginx (for `nginx -t`), systemd-analyze (from systemd) and iproute2.
PREPARE_GROUPS="test"

prepare() {
    # The image's policy-rc.d (or the lack of an init) keeps the nginx package from
    # starting a daemon; the lint and the TLS test run their own nginx on loopback.
    # certbot and docker.io: the rendered units run /usr/bin/certbot and /usr/bin/docker,
    # and `systemd-analyze verify` checks that what a unit runs exists.
    apt_install shellcheck nginx systemd iproute2 openssl certbot docker.io
    local tool
    for tool in shellcheck nginx systemd-analyze ip openssl /usr/bin/certbot /usr/bin/docker; do
        command -v "$tool" >/dev/null || die "$tool is missing after install"
    done
}
