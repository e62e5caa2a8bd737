# shellcheck shell=bash disable=SC2034  # sourced by tools/prepare.sh, which reads PREPARE_GROUPS
# The project's virtualenv (.venv) with the app, tools and test extras.
PREPARE_GROUPS="test demo"

prepare() {
    local python=${PYTHON:-python3}
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$python is older than 3.11; set PYTHON to a newer interpreter"
    if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
        apt_install python3-venv
    fi
    local inputs=("$ROOT/pyproject.toml" "$ROOT/app/requirements.txt" "$ROOT/tools/requirements.txt" "$ROOT/tests/requirements.txt")
    if [ -x "$ROOT/.venv/bin/python" ] && stamp_fresh "venv-$(echo "$ROOT" | sha256sum | cut -c1-12)" "${inputs[@]}"; then
        return 0
    fi
    [ -x "$ROOT/.venv/bin/python" ] || "$python" -m venv "$ROOT/.venv"
    "$ROOT/.venv/bin/python" -m pip install -q --upgrade pip
    "$ROOT/.venv/bin/python" -m pip install -q -e "${ROOT}[app,tools,test]"
    stamp_write "venv-$(echo "$ROOT" | sha256sum | cut -c1-12)" "${inputs[@]}"
}
