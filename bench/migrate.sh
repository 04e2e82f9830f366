#!/usr/bin/env bash
# Benchmark (issue #26): `tenant-router tenants migrate` over many tenant
# schemas. Not run by CI. On its own private cluster (scripts/cluster, a
# release build), in a fresh database `bench_migrate`:
#
#   setup     BENCH_TENANTS (1000) schema tenants mg0001 … : each a role
#             mg0001_role, a schema mg0001 and a table items owned by the
#             role, with BENCH_ROWS (100) rows
#   -p 1/2/4  one migration per --parallel level, each a new name and
#             column: `ALTER TABLE items ADD COLUMN note_pN text;
#             CREATE INDEX items_note_pN ON items (note_pN);` applied to
#             every schema (wall time of the whole command, process start
#             and connections included)
#   no-op     the last migration again: every schema skipped
#
# The load average is printed with each number (other work on the machine
# shows in it). Environment: PG_TENANT_DIR (/var/tmp/pg_tenant_bench_migrate),
# PG_TENANT_PORT (25464), PG_TENANT_PROFILE (release), BENCH_TENANTS,
# BENCH_ROWS, BENCH_PARALLEL ("1 2 4"). `bench/migrate.sh stop` stops the
# cluster; `scripts/cluster destroy` with the same PG_TENANT_DIR deletes it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PG_TENANT_DIR=${PG_TENANT_DIR:-/var/tmp/pg_tenant_bench_migrate}
export PG_TENANT_PORT=${PG_TENANT_PORT:-25464}
export PG_TENANT_PROFILE=${PG_TENANT_PROFILE:-release}
export PG_TENANT_DB=bench_migrate
N=${BENCH_TENANTS:-1000}
ROWS=${BENCH_ROWS:-100}
LEVELS=${BENCH_PARALLEL:-1 2 4}
if [ "${1:-}" = stop ]; then exec scripts/cluster stop; fi

scripts/cluster start >/dev/null
eval "$(scripts/cluster env)"
if [ "$PG_TENANT_PROFILE" = release ]; then
  cargo build --release -q -p tenant-router
else
  cargo build -q -p tenant-router
fi
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$PG_TENANT_PROFILE/tenant-router
URL="host=$PG_TENANT_SOCK port=$PGPORT user=postgres dbname=$PG_TENANT_DB"
psql_c() { scripts/cluster psql -tAq "$@"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
load() { cut -d' ' -f1 /proc/loadavg; }

# scripts/cluster trades durability for test speed (fsync, synchronous_commit
# and full_page_writes off); a migration's cost is mostly commits and index
# files made durable, so this cluster measures with them on, as production
# runs (BENCH_DURABLE=0: the test cluster's settings).
if [ "${BENCH_DURABLE:-1}" = 1 ]; then v=on; else v=off; fi
for s in fsync synchronous_commit full_page_writes; do
  psql_c -d postgres -c "ALTER SYSTEM SET $s = $v" >/dev/null
done
psql_c -d postgres -c "SELECT pg_reload_conf()" >/dev/null

# A fresh database with N tenants (roles are cluster-wide and kept).
t0=$(now)
psql_c -d postgres -c "DROP DATABASE IF EXISTS $PG_TENANT_DB WITH (FORCE)" >/dev/null
psql_c -d postgres -c "CREATE DATABASE $PG_TENANT_DB" >/dev/null
psql_c -c "CREATE EXTENSION pg_tenant" >/dev/null
psql_c >/dev/null <<SQL
SET client_min_messages = warning;
DO \$\$
DECLARE i int; t text; r text;
BEGIN
  FOR i IN 1..$N LOOP
    t := 'mg' || lpad(i::text, 4, '0'); r := t || '_role';
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I NOLOGIN', r);
    END IF;
    PERFORM tenant.create_app_role(r);
    EXECUTE format('CREATE SCHEMA %I; GRANT USAGE, CREATE ON SCHEMA %I TO %I', t, t, r);
    EXECUTE format('CREATE TABLE %I.items (id int PRIMARY KEY, body text, created timestamptz DEFAULT now())', t);
    EXECUTE format('INSERT INTO %I.items (id, body) SELECT g, md5(g::text) FROM generate_series(1, $ROWS) g', t);
    EXECUTE format('ALTER TABLE %I.items OWNER TO %I', t, r);
    PERFORM tenant.create_tenant(t, isolation => 'schema', schema_name => t, role_name => r);
  END LOOP;
END
\$\$;
VACUUM ANALYZE;
SQL
t1=$(now)
echo "setup: $N tenant schemas x $ROWS rows in $(secs "$t0" "$t1") s"
echo "cores: $(nproc); PostgreSQL $(psql_c -c 'SHOW server_version'); fsync, full_page_writes, synchronous_commit: $(psql_c -c "SELECT string_agg(setting, ', ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'full_page_writes', 'synchronous_commit')"); $PG_TENANT_PROFILE build"

# run NAME PARALLEL EXPECT: migrate, check the summary, print the time.
run() {
  local name=$1 par=$2 expect=$3 col=$4 script out t0 t1 before
  script=$(mktemp)
  printf 'ALTER TABLE items ADD COLUMN %s text;\nCREATE INDEX items_%s ON items (%s);\n' "$col" "$col" "$col" > "$script"
  before=$(load)
  t0=$(now)
  out=$("$BIN" tenants migrate --url "$URL" --name "$name" --parallel "$par" "$script" | tail -1) || true
  t1=$(now)
  rm -f "$script"
  case "$out" in
    "migrate $name: $expect"*) ;;
    *) echo "unexpected result: $out" >&2; exit 1 ;;
  esac
  printf '%-28s %8s s   (%s; load average %s before, %s after)\n' \
    "$name --parallel $par" "$(secs "$t0" "$t1")" "${out#migrate $name: }" "$before" "$(load)"
}

last=
for p in $LEVELS; do
  run "add_note_p$p" "$p" "$N applied, 0 skipped, 0 failed" "note_p$p"
  last=$p
done
run "add_note_p$last" "$last" "0 applied, $N skipped, 0 failed" "note_p$last"
# Every schema has every column and index, owned by its role.
psql_c -c "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relname LIKE 'items_note_p%' AND pg_get_userbyid(c.relowner) = n.nspname || '_role'" |
  { read -r k; want=$((N * $(echo "$LEVELS" | wc -w))); [ "$k" = "$want" ] || { echo "indexes: $k, expected $want" >&2; exit 1; }; echo "checked: $k indexes, each owned by its tenant's role"; }
