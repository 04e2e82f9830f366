#!/bin/bash
# Runs once at first start of the postgres image: preload pg_tenant, give it
# the router's public key (derived from the signing key file; the server
# never keeps the private key), create the extension.
set -euo pipefail
pub=$(openssl pkey -in /run/secrets/context_signing_key -pubout -outform DER | tail -c 32 | od -An -tx1 | tr -d ' \n')
cat >> "$PGDATA/postgresql.conf" <<CONF
shared_preload_libraries = 'pg_tenant'
pg_tenant.context_public_keys = '$pub'
CONF
cp "$PGDATA/postgresql.conf" /etc/postgresql/postgresql.conf 2>/dev/null || true
pg_ctl -D "$PGDATA" -w restart -o "-c listen_addresses=''"
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c 'CREATE EXTENSION IF NOT EXISTS pg_tenant'
