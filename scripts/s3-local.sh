#!/usr/bin/env bash
# A real S3-protocol server on 127.0.0.1 for the remote-cache tests and for trying `--remote s3://`
# by hand: s3s-fs (crates.io, an S3 server over a directory; it honours `If-None-Match: *`, which
# apitune's create-if-absent writes rely on), built with `cargo install` on first use.
#
#   scripts/s3-local.sh start   # installs if needed, starts, prints the environment to export
#   scripts/s3-local.sh env     # the environment again
#   scripts/s3-local.sh stop
#
# Settings: APITUNE_S3_PORT (default 9914), APITUNE_S3_DIR (default $TMPDIR/apitune-s3), and
# APITUNE_TOOLS (where the server is installed; default ~/.cache/apitune-tools).
set -euo pipefail

port="${APITUNE_S3_PORT:-9914}"
data="${APITUNE_S3_DIR:-${TMPDIR:-/tmp}/apitune-s3}"
tools="${APITUNE_TOOLS:-$HOME/.cache/apitune-tools}"
server="$tools/bin/s3s-fs"
pidfile="$data.pid"
bucket="apitune"
key_id="apitune-test"
secret="apitune-test-secret"

print_env() {
    cat <<ENV
export AWS_ENDPOINT_URL=http://127.0.0.1:$port
export AWS_ALLOW_HTTP=true
export AWS_ACCESS_KEY_ID=$key_id
export AWS_SECRET_ACCESS_KEY=$secret
export AWS_REGION=us-east-1
export APITUNE_TEST_S3=s3://$bucket
ENV
}

case "${1:-}" in
start)
    if [ ! -x "$server" ]; then
        echo "installing s3s-fs 0.14.1 into $tools (once)..." >&2
        cargo install --quiet --locked --root "$tools" s3s-fs@0.14.1 --features binary >&2
    fi
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "already running (pid $(cat "$pidfile"))" >&2
    else
        mkdir -p "$data/$bucket"
        "$server" --host 127.0.0.1 --port "$port" --access-key "$key_id" --secret-key "$secret" \
            "$data" >"$data.log" 2>&1 &
        echo $! >"$pidfile"
        for _ in $(seq 1 50); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
            sleep 0.1
        done
        if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            echo "s3s-fs did not start; see $data.log" >&2
            exit 1
        fi
        echo "s3s-fs serving $data on 127.0.0.1:$port (pid $(cat "$pidfile"))" >&2
    fi
    print_env
    ;;
env) print_env ;;
stop)
    if [ -f "$pidfile" ]; then
        kill "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    fi
    ;;
*)
    echo "usage: $0 start|env|stop" >&2
    exit 2
    ;;
esac
