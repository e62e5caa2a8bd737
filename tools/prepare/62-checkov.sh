# shellcheck shell=bash disable=SC2034  # sourced by tools/prepare.sh, which reads PREPARE_GROUPS
# checkov (the security scan gate, tests/test_checkov.py) in its own virtualenv under
# $EC2I_CACHE: its many exact pins would fight the project's .venv.
PREPARE_GROUPS="test"

CHECKOV_VERSION=3.3.30

prepare() {
    local venv="$EC2I_CACHE/checkov-venv"
    # `checkov --version` takes seconds to import; a stamp of this file is instant.
    if [ -x "$venv/bin/checkov" ] && stamp_fresh checkov-venv "${BASH_SOURCE[0]}"; then
        return 0
    fi
    local python=${PYTHON:-python3}
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    log "pip install checkov==$CHECKOV_VERSION (about a minute)"
    "$venv/bin/python" -m pip install -q "checkov==$CHECKOV_VERSION"
    [ "$("$venv/bin/checkov" --version)" = "$CHECKOV_VERSION" ] || die "checkov $CHECKOV_VERSION did not install"
    stamp_write checkov-venv "${BASH_SOURCE[0]}"
}
