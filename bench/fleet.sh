#!/usr/bin/env bash
# Login rate through tenant-router with the fleet's shared connection
# limits off and on (docs/src/benchmarks/fleet.md): pgbench -C
# (a new connection per transaction of one SELECT 1), 8 clients, for a
# tenant with max_connections = 1000, against two routers started side by
# side on the same cluster, one with [fleet] shared_connection_limits =
# false (the default) and one with true. Each cell is run twice, in turns
# (off, on, off, on, off, on), and the table shows every run; then the
# cost of one lease on the catalog server alone (acquire + release).
#
#   bench/fleet.sh                 # BENCH_SECS=8 per run
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SECS=${BENCH_SECS:-8}
export PG_TENANT_DB=${PG_TENANT_DB:-bench}
scripts/cluster start >/dev/null
eval "$(scripts/cluster env)"
scripts/cluster psql -q <<'SQL' >/dev/null
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_tenant;
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bench_trust') THEN
    CREATE ROLE bench_trust LOGIN IN ROLE hba_trust;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bench_router') THEN
    CREATE ROLE bench_router LOGIN IN ROLE tenant_router;
  END IF;
  PERFORM tenant.create_app_role('bench_trust');
  IF NOT EXISTS (SELECT 1 FROM tenant.tenants WHERE id = 'fleetb') THEN
    PERFORM tenant.create_tenant('fleetb', max_connections => 1000);
  END IF;
END $$;
SQL
cargo build --release -q -p tenant-router
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/tenant-router
OUT=$ROOT/bench/out/fleet; mkdir -p "$OUT"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
declare -A PORT
for mode in off on; do
  port=$(free_port)
  PORT[$mode]=$port
  shared=false; [ "$mode" = on ] && shared=true
  cat > "$OUT/router-$mode.toml" <<TOML
listen = "127.0.0.1:$port"
upstream = "127.0.0.1:$PGPORT"
context_signing_key_file = "$PG_TENANT_KEY_FILE"
admin_listen = ""
[catalog]
url = "host=$PG_TENANT_SOCK port=$PGPORT user=bench_router dbname=$PG_TENANT_DB"
[fleet]
shared_connection_limits = $shared
TOML
  TENANT_ROUTER_LOG=warn "$BIN" -c "$OUT/router-$mode.toml" 2>"$OUT/router-$mode.log" &
  pids+=($!)
done
for mode in off on; do
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/${PORT[$mode]}") 2>/dev/null && break
    sleep 0.1
  done
done
echo 'SELECT 1;' > "$OUT/select1.sql"
rate() { # port
  pgbench -n -C -c 8 -j 2 -T "$SECS" -f "$OUT/select1.sql" -h 127.0.0.1 -p "$1" \
    -U bench_trust.fleetb "$PG_TENANT_DB" 2>"$OUT/pgbench.err" | awk '/^tps = /{printf "%.0f", $3}'
}
declare -A R
for run in 1 2 3; do
  for mode in off on; do
    R[$mode$run]=$(rate "${PORT[$mode]}")
  done
done
# What a lease costs on the catalog server: acquire + release, prepared,
# one connection of the router's role, as the lease connection sends them.
printf "SELECT tenant.fleet_acquire('fleetc', 1000000);\nSELECT tenant.fleet_release('fleetc');\n" > "$OUT/lease.sql"
pairs=$(pgbench -n -M prepared -c 1 -T "$SECS" -f "$OUT/lease.sql" -h "$PG_TENANT_SOCK" -p "$PGPORT" \
  -U bench_router "$PG_TENANT_DB" 2>>"$OUT/pgbench.err" | awk '/^tps = /{printf "%.0f", $3}')
# The last sessions' leases are given back as they close (at most 5 s).
for _ in $(seq 50); do
  left=$(scripts/cluster psql -tAc "SELECT coalesce(sum(connections), 0) FROM tenant.fleet_counts() WHERE tenant = 'fleetb'")
  [ "$left" = 0 ] && break
  sleep 0.1
done
echo "pgbench -C -c 8 -j 2, ${SECS}s per run, SELECT 1; logins per second"
echo "| fleet.shared_connection_limits | run 1 | run 2 | run 3 |"
echo "| --- | ---: | ---: | ---: |"
echo "| false (each router counts alone) | ${R[off1]} | ${R[off2]} | ${R[off3]} |"
echo "| true (a lease in the catalog server per login) | ${R[on1]} | ${R[on2]} | ${R[on3]} |"
echo "lease acquire + release pairs per second on one connection (Unix socket): $pairs"
echo "leases left after the runs: $left (expected 0)"
