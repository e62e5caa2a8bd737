#!/usr/bin/env bash
# Prepare this machine for `make test` or `make demo`: one entry point, idempotent, and
# fast when everything is already in place.
#
#   bash tools/prepare.sh [GROUP ...]      GROUP: test (default), demo
#
# Each component lives in tools/prepare/NN-<name>.sh, runs in order of its number, and
# declares the groups it belongs to in PREPARE_GROUPS and its work in a `prepare`
# function. Shared helpers (logging, apt, stamps) are in tools/prepare/lib.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
export EC2I_CACHE="${EC2I_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ec2-inference}"
mkdir -p "$EC2I_CACHE"

groups=("$@")
[ ${#groups[@]} -gt 0 ] || groups=(test)

# shellcheck source=tools/prepare/lib.sh
source "$ROOT/tools/prepare/lib.sh"

for component in "$ROOT"/tools/prepare/[0-9]*.sh; do
    (
        PREPARE_GROUPS=""
        # shellcheck source=/dev/null
        source "$component"
        for group in "${groups[@]}"; do
            if [[ " $PREPARE_GROUPS " == *" $group "* ]]; then
                name="$(basename "$component" .sh)"
                started=$SECONDS
                log "prepare ${name#[0-9][0-9]-}"
                prepare
                log "prepare ${name#[0-9][0-9]-}: done in $((SECONDS - started)) s"
                break
            fi
        done
    )
done
