#!/bin/sh
# certgate container entrypoint (installed as /usr/local/bin/certgate-entrypoint).
#
#   certgate-entrypoint serve [certgate serve options]   first start: `certgate init`, then serve
#   certgate-entrypoint healthcheck                      exit 0 when /healthz answers
#   certgate-entrypoint COMMAND...                       anything else runs as given
#
# Environment. The site is the directory of $CERTGATE_CONFIG (the image sets
# /data/site/certgate.toml, so `certgate COMMAND` in the container finds it too).
# Read when the site is written (the first start, on an empty volume):
#   CERTGATE_EXTERNAL_URL     https URL clients use to reach the main listener; its host name
#                             goes into the TLS certificates (beside localhost and 127.0.0.1)
#   CERTGATE_PLAIN_URL        http URL devices use for SCEP and /ca/ (default: same host, 8080)
#   CERTGATE_HOST             listen address (default 0.0.0.0)
#   CERTGATE_DATABASE_URL_FILE  a file holding the postgresql+asyncpg:// URL (several
#                             instances on one database); the site's [store] url names the
#                             file, so the URL (and its password) is never copied; or
#   CERTGATE_DATABASE_URL     the URL itself; the site names the variable (env:), so it
#                             must be set at every start
#   CERTGATE_INIT_OPTIONS     more `certgate init` options, split on blanks (e.g. ports)
# Read at every start:
#   CERTGATE_CA_PASSPHRASE    passphrase of the CA and SCEP RA keys; or
#   CERTGATE_CA_PASSPHRASE_FILE  a file holding it (a mounted secret)
# Later starts serve the site as it is: edit $CERTGATE_SITE/certgate.toml to change it.
set -eu

config=${CERTGATE_CONFIG:-/data/site/certgate.toml}
site=$(dirname "$config")
incomplete="$site/.init-incomplete"

if [ -n "${CERTGATE_CA_PASSPHRASE_FILE:-}" ] && [ -z "${CERTGATE_CA_PASSPHRASE:-}" ]; then
    CERTGATE_CA_PASSPHRASE=$(cat "$CERTGATE_CA_PASSPHRASE_FILE")
    export CERTGATE_CA_PASSPHRASE
fi

init_site() {
    if [ -z "${CERTGATE_CA_PASSPHRASE:-}" ]; then
        echo "certgate-entrypoint: CERTGATE_CA_PASSPHRASE is not set: a random passphrase is" \
            "generated into the volume beside the CA keys (not for production)" >&2
    fi
    set -- init "$site" --host "${CERTGATE_HOST:-0.0.0.0}"
    if [ -n "${CERTGATE_EXTERNAL_URL:-}" ]; then
        set -- "$@" --external-url "$CERTGATE_EXTERNAL_URL"
        host=$(python3 -c 'import sys, urllib.parse as u; print(u.urlsplit(sys.argv[1]).hostname or "")' \
            "$CERTGATE_EXTERNAL_URL")
        seen=" "
        for name in "$host" localhost 127.0.0.1; do
            case "$seen" in *" $name "*) continue ;; esac
            [ -n "$name" ] || continue
            seen="$seen$name "
            set -- "$@" --name "$name"
        done
    fi
    if [ -n "${CERTGATE_DATABASE_URL_FILE:-}" ]; then
        set -- "$@" --database-url "file:$CERTGATE_DATABASE_URL_FILE"
    elif [ -n "${CERTGATE_DATABASE_URL:-}" ]; then
        set -- "$@" --database-url "env:CERTGATE_DATABASE_URL"
    fi
    if [ -n "${CERTGATE_PLAIN_URL:-}" ]; then
        set -- "$@" --plain-url "$CERTGATE_PLAIN_URL"
    fi
    # shellcheck disable=SC2086  # split on purpose: a list of options
    set -- "$@" ${CERTGATE_INIT_OPTIONS:-}
    echo "certgate-entrypoint: first start: certgate $*" >&2
    # A site whose init stopped half-way (database unreachable...) has its certgate.toml but
    # perhaps not its database, CA or bootstrap accounts: the marker makes later starts say so
    # instead of serving it.
    mkdir -p "$site"
    : > "$incomplete"
    # init writes the site's certgate.toml itself: it must not read one first
    env -u CERTGATE_CONFIG certgate "$@"
    rm -f "$incomplete"
}

cmd=${1:-serve}
case "$cmd" in
    serve)
        if [ $# -gt 0 ]; then shift; fi
        if [ -f "$incomplete" ]; then
            echo "certgate-entrypoint: $site: the first start's certgate init did not finish" \
                "(its error is in that start's log); remove $site to start over" >&2
            exit 2
        fi
        if [ ! -f "$config" ]; then
            init_site
        fi
        exec certgate serve -c "$config" "$@"
        ;;
    healthcheck)
        # /healthz on the plain listener when the site has one, else on the main listener.
        exec python3 - "$config" <<'EOF'
import ssl, sys, tomllib, urllib.request
with open(sys.argv[1], "rb") as fh:
    server = tomllib.load(fh).get("server", {})
plain = server.get("plain", {})
if plain.get("port"):
    url = f"http://127.0.0.1:{plain['port']}/healthz"
else:
    scheme = "https" if "tls" in server else "http"
    url = f"{scheme}://127.0.0.1:{server.get('port', 8080)}/healthz"
context = ssl._create_unverified_context()  # a liveness probe on loopback, no data exchanged
try:
    with urllib.request.urlopen(url, timeout=4, context=context) as reply:
        sys.exit(0 if reply.status == 200 else 1)
except OSError as exc:
    print(f"certgate-entrypoint: {url}: {exc}", file=sys.stderr)
    sys.exit(1)
EOF
        ;;
    *)
        exec "$@"
        ;;
esac
