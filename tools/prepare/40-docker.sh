# shellcheck shell=bash disable=SC2034  # sourced by tools/prepare.sh, which reads PREPARE_GROUPS
# Docker engine for the image build tests (tests/tools/test_build*.py): Debian's docker.io,
# and dockerd started when no daemon answers. This machine has no bridge networking, so
# the daemon runs with --iptables=false --bridge=none and builds use `--network host`.
# docker-registry is installed for the same tests, which start their own instances on
# free loopback ports (testkit/registry.py); its packaged service is not used.
PREPARE_GROUPS="test"

DOCKERD_LOG="${DOCKERD_LOG:-/var/log/ec2i-dockerd.log}"
DOCKERD_PIDFILE="${DOCKERD_PIDFILE:-/var/run/docker.pid}"

docker_answers() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

prepare() {
    apt_install docker.io docker-registry
    docker_answers && return 0
    [ "$(id -u)" -eq 0 ] || die "no Docker daemon answers and only root can start one"
    # A stale pid file from a killed daemon makes dockerd refuse to start.
    if [ -f "$DOCKERD_PIDFILE" ] && ! kill -0 "$(cat "$DOCKERD_PIDFILE")" 2>/dev/null; then
        rm -f "$DOCKERD_PIDFILE"
    fi
    log "starting dockerd (log: $DOCKERD_LOG, pid file: $DOCKERD_PIDFILE)"
    setsid dockerd --iptables=false --bridge=none --storage-driver=overlay2 \
        --pidfile "$DOCKERD_PIDFILE" >>"$DOCKERD_LOG" 2>&1 </dev/null &
    local waited=0
    until docker_answers; do
        kill -0 $! 2>/dev/null || die "dockerd exited; see $DOCKERD_LOG"
        [ $waited -lt 60 ] || die "dockerd did not answer within 60 s; see $DOCKERD_LOG"
        sleep 1
        waited=$((waited + 1))
    done
    log "dockerd $(docker version --format '{{.Server.Version}}') is up (pid $(cat "$DOCKERD_PIDFILE"))"
}
