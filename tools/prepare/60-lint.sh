# Linters for the rendered instance artifacts (tools/lint_templates.py): shellcheck,
# nginx (for `nginx -t`), systemd-analyze (from systemd) and iproute2.
PREPARE_GROUPS="test"

prepare() {
    # The image's policy-rc.d (or the lack of an init) keeps the nginx package from
    # starting a daemon; the lint and the TLS test run their own nginx on loopback.
    apt_install shellcheck nginx systemd iproute2 openssl
    local tool
    for tool in shellcheck nginx systemd-analyze ip openssl; do
        command -v "$tool" >/dev/null || die "$tool is missing after install"
    done
}
