#!/usr/bin/env bash
# Benchmark: pgbench select-only with TLS, in one run: direct to PostgreSQL
# (ssl=on), through tenant-router (TLS from the client, verify-full to
# PostgreSQL) and through PgBouncer (session mode, the same on both sides),
# on the same cluster; simple and prepared at 8 clients, and connection
# setup (pgbench -C, 8 clients). Every client uses sslmode=require; every
# path authenticates as a trust user. Turns TLS on in the cluster for the
# run and off again. Prints a Markdown table.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SECS=${BENCH_SECS:-8}
export PG_TENANT_PROFILE=release PG_TENANT_DB=bench
scripts/cluster start >/dev/null
eval "$(scripts/cluster env)"
scripts/cluster psql -f bench/setup.sql >/dev/null
if ! scripts/cluster psql -tAc "SELECT 1 FROM pg_class WHERE relname = 'pgbench_accounts'" | grep -q 1; then
  pgbench -i -q -s 10 -h "$PG_TENANT_SOCK" -p "$PGPORT" -U postgres bench >/dev/null 2>&1
fi
scripts/cluster psql -c "GRANT SELECT ON pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history TO bench_trust" >/dev/null
cargo build --release -q -p tenant-router
OUT=$ROOT/bench/out; mkdir -p "$OUT"; chmod 755 "$OUT"
RPORT=6452 BPORT=6453

# One CA and one certificate (localhost, 127.0.0.1) for all three servers.
TLS=$OUT/tls; scripts/demo-certs "$TLS"
PGTLS=$OUT/pg-tls; install -d -o postgres -m 700 "$PGTLS"
install -o postgres -m 600 "$TLS/server.crt" "$TLS/server.key" "$PGTLS/"
scripts/cluster psql -c "ALTER SYSTEM SET ssl_cert_file = '$PGTLS/server.crt'" \
  -c "ALTER SYSTEM SET ssl_key_file = '$PGTLS/server.key'" -c "ALTER SYSTEM SET ssl = on" \
  -c "SELECT pg_reload_conf()" >/dev/null

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
            [ -f "$OUT/pgbouncer-tls/pgbouncer.pid" ] && kill "$(cat "$OUT/pgbouncer-tls/pgbouncer.pid")" 2>/dev/null || true
            scripts/cluster psql -c "ALTER SYSTEM RESET ssl" -c "SELECT pg_reload_conf()" >/dev/null || true; }
trap cleanup EXIT

cat > "$OUT/router-tls.toml" <<TOML
listen = "127.0.0.1:$RPORT"
upstream = "127.0.0.1:$PGPORT"
context_signing_key_file = "$PG_TENANT_KEY_FILE"
admin_listen = "127.0.0.1:6455"
[catalog]
url = "host=$PG_TENANT_SOCK port=$PGPORT user=bench_router dbname=bench"
[tls]
cert_file = "$TLS/server.crt"
key_file = "$TLS/server.key"
client_tls = "require"
upstream_tls = "verify-full"
upstream_ca_file = "$TLS/ca.crt"
TOML
TENANT_ROUTER_LOG=warn target/release/tenant-router -c "$OUT/router-tls.toml" 2>"$OUT/router-tls.log" &
pids+=($!)

BOUNCER=$OUT/pgbouncer-tls; install -d -o postgres "$BOUNCER"
install -o postgres -m 600 "$TLS/server.crt" "$TLS/server.key" "$TLS/ca.crt" "$BOUNCER/"
echo '"bench_trust" ""' > "$BOUNCER/userlist.txt"
cat > "$BOUNCER/pgbouncer.ini" <<INI
[databases]
bench = host=127.0.0.1 port=$PGPORT dbname=bench user=bench_trust
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BPORT
unix_socket_dir =
auth_type = trust
auth_file = $BOUNCER/userlist.txt
pool_mode = session
max_client_conn = 500
default_pool_size = 64
client_tls_sslmode = require
client_tls_cert_file = $BOUNCER/server.crt
client_tls_key_file = $BOUNCER/server.key
server_tls_sslmode = verify-full
server_tls_ca_file = $BOUNCER/ca.crt
logfile = $BOUNCER/pgbouncer.log
pidfile = $BOUNCER/pgbouncer.pid
INI
chown postgres "$BOUNCER"/*
runuser -u postgres -- pgbouncer -d -q "$BOUNCER/pgbouncer.ini"

targets=("direct:$PGPORT:bench_trust" "tenant-router:$RPORT:bench_trust.t1" "pgbouncer:$BPORT:bench_trust")
for t in "${targets[@]}"; do # wait until each one answers over TLS
  IFS=: read -r name port user <<<"$t"
  for _ in $(seq 50); do
    psql "host=127.0.0.1 port=$port user=$user dbname=bench sslmode=require" -XtAc 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.1
  done
done

tps() { # port user args...
  local port=$1 user=$2; shift 2
  PGSSLMODE=require pgbench -n -S -T "$SECS" -h 127.0.0.1 -p "$port" -U "$user" "$@" bench 2>"$OUT/pgbench-tls.err" \
    | awk '/^tps = /{printf "%.0f", $3}' || true
}
declare -A R
cols=()
for mode in simple prepared; do
  col="$mode c=8"; cols+=("$col")
  for t in "${targets[@]}"; do
    IFS=: read -r name port user <<<"$t"
    R["$name|$col"]=$(tps "$port" "$user" -M "$mode" -c 8 -j 2)
  done
done
col="connect -C c=8"; cols+=("$col")
for t in "${targets[@]}"; do
  IFS=: read -r name port user <<<"$t"
  R["$name|$col"]=$(tps "$port" "$user" -C -c 8 -j 2)
done

echo "pgbench -S over TLS (sslmode=require; proxies: TLS both sides, verify-full upstream), ${SECS}s per cell, scale 10, 2 cores; TPS (ratio to direct)"
printf "| target |"; for col in "${cols[@]}"; do printf " %s |" "$col"; done; echo
printf "| --- |"; for _ in "${cols[@]}"; do printf " ---: |"; done; echo
for t in "${targets[@]}"; do
  IFS=: read -r name _ _ <<<"$t"
  printf "| %s |" "$name"
  for col in "${cols[@]}"; do
    v=${R["$name|$col"]:-0}; d=${R["direct|$col"]:-1}
    if [ -n "$v" ] && [ "$v" != 0 ]; then printf " %s (%.2f) |" "$v" "$(echo "$v / $d" | bc -l)"; else printf " failed |"; fi
  done
  echo
done
