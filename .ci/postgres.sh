#!/usr/bin/env bash
# A local PostgreSQL for the deal-record tests, from Debian's packages.
#
#   eval "$(.ci/postgres.sh)"      # installs if missing, starts, creates role+db, exports DATABASE_URL
#
# Idempotent and quick when already set up (no apt call when the server binaries exist).
# Installing needs root (CI runs as root) or sudo. Everything is logged to stderr; stdout is
# only the `export DATABASE_URL=...` line. The role's password is a throw-away test credential
# for a server listening on localhost only; override with DV_PG_USER / DV_PG_PASSWORD / DV_PG_DB.
set -euo pipefail

DB_USER="${DV_PG_USER:-dealvault}"
DB_PASS="${DV_PG_PASSWORD:-dealvault}"
DB_NAME="${DV_PG_DB:-dealvault_test}"

log() { echo "postgres.sh: $*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
    else log "need root (or sudo) to: $*"; exit 1
    fi
}

as_postgres() {
    if [ "$(id -un)" = postgres ]; then "$@"
    elif [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"
    else sudo -n -u postgres "$@"
    fi
}

# 1. install
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || ! command -v pg_ctlcluster >/dev/null 2>&1; then
    log "installing postgresql (apt)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n1)"

# 2. a cluster, started
if ! pg_lsclusters -h 2>/dev/null | awk -v v="$VERSION" '$1==v && $2=="main"' | grep -q .; then
    log "creating cluster $VERSION/main"
    as_root pg_createcluster "$VERSION" main >&2
fi
PORT="$(pg_lsclusters -h | awk -v v="$VERSION" '$1==v && $2=="main" {print $3}')"
if ! pg_lsclusters -h | awk -v v="$VERSION" '$1==v && $2=="main" {print $4}' | grep -q online; then
    log "starting cluster $VERSION/main on port $PORT"
    as_root pg_ctlcluster "$VERSION" main start >&2
fi
for _ in $(seq 1 50); do
    pg_isready -q -h 127.0.0.1 -p "$PORT" && break
    sleep 0.2
done
pg_isready -h 127.0.0.1 -p "$PORT" >&2 || { log "server on port $PORT is not ready"; exit 1; }

# 3. role and database, idempotently (CREATEDB: the unit suite gives each pytest-xdist worker its own
#    database, tests/unit/helpers_db.py)
psql_pg() { as_postgres psql -p "$PORT" -v ON_ERROR_STOP=1 -qtAX "$@"; }
if [ "$(psql_pg -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" != 1 ]; then
    log "creating role $DB_USER"
    psql_pg -c "CREATE ROLE \"$DB_USER\" LOGIN CREATEDB PASSWORD '$DB_PASS'" >&2
else
    psql_pg -c "ALTER ROLE \"$DB_USER\" LOGIN CREATEDB PASSWORD '$DB_PASS'" >&2
fi
if [ "$(psql_pg -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != 1 ]; then
    log "creating database $DB_NAME"
    psql_pg -c "CREATE DATABASE \"$DB_NAME\" OWNER \"$DB_USER\"" >&2
fi

echo "export DATABASE_URL=postgresql+psycopg://$DB_USER:$DB_PASS@127.0.0.1:$PORT/$DB_NAME"
