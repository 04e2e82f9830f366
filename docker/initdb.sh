#!/bin/bash
# Runs once at first start of the postgres image: preload pg_tenant, set the
# context key from the shared secret file, create the extension.
set -euo pipefail
key=$(cat /run/secrets/context_key)
cat >> "$PGDATA/postgresql.conf" <<CONF
shared_preload_libraries = 'pg_tenant'
pg_tenant.context_key = '$key'
CONF
cp "$PGDATA/postgresql.conf" /etc/postgresql/postgresql.conf 2>/dev/null || true
pg_ctl -D "$PGDATA" -w restart -o "-c listen_addresses=''"
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c 'CREATE EXTENSION IF NOT EXISTS pg_tenant'
