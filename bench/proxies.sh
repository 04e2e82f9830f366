#!/usr/bin/env bash
# Benchmark: pgbench select-only through nothing (direct), tenant-router,
# PgBouncer (Debian package, session mode) and pgvpd (if `cargo install
# pgvpd` put it at $PGVPD, default /var/tmp/pgvpd/bin/pgvpd), on the same
# cluster, in one run: simple and prepared protocol at 1, 8 and 32 clients,
# plus connection setup (pgbench -C, 8 clients). Prints a Markdown table.
# BENCH_BASELINE: the path of another tenant-router binary (e.g. a build of
# the previous commit), measured in the same run as "baseline".
# All paths authenticate as a trust user, so every proxy does the same work.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SECS=${BENCH_SECS:-8}
PGVPD=${PGVPD:-/var/tmp/pgvpd/bin/pgvpd}
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
RPORT=6442 BPORT=6443 VPORT=6444
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
            [ -f "$OUT/pgbouncer/pgbouncer.pid" ] && kill "$(cat "$OUT/pgbouncer/pgbouncer.pid")" 2>/dev/null || true; }
trap cleanup EXIT

cat > "$OUT/router.toml" <<TOML
listen = "127.0.0.1:$RPORT"
upstream = "127.0.0.1:$PGPORT"
context_signing_key_file = "$PG_TENANT_KEY_FILE"
admin_listen = "127.0.0.1:6445"
[catalog]
url = "host=$PG_TENANT_SOCK port=$PGPORT user=bench_router dbname=bench"
TOML
TENANT_ROUTER_LOG=warn target/release/tenant-router -c "$OUT/router.toml" 2>"$OUT/router.log" &
pids+=($!)
BASELINE=${BENCH_BASELINE:-} LPORT=6446
if [ -n "$BASELINE" ]; then
  sed -e "s/:$RPORT\"/:$LPORT\"/" -e 's/^admin_listen = .*/admin_listen = ""/' "$OUT/router.toml" > "$OUT/baseline.toml"
  TENANT_ROUTER_LOG=warn "$BASELINE" -c "$OUT/baseline.toml" 2>"$OUT/baseline.log" &
  pids+=($!)
fi

BOUNCER=$OUT/pgbouncer; install -d -o postgres "$BOUNCER"
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
logfile = $BOUNCER/pgbouncer.log
pidfile = $BOUNCER/pgbouncer.pid
INI
chown postgres "$BOUNCER"/*
runuser -u postgres -- pgbouncer -d -q "$BOUNCER/pgbouncer.ini"

targets=("direct:$PGPORT:bench_trust" "tenant-router:$RPORT:bench_trust.t1")
[ -z "$BASELINE" ] || targets+=("baseline:$LPORT:bench_trust.t1")
targets+=("pgbouncer:$BPORT:bench_trust")
if [ -x "$PGVPD" ]; then
  cat > "$OUT/pgvpd.conf" <<CONF
port = $VPORT
listen_host = 127.0.0.1
upstream_host = 127.0.0.1
upstream_port = $PGPORT
tenant_separator = .
context_variables = app.current_tenant_id
value_separator = :
CONF
  "$PGVPD" --config "$OUT/pgvpd.conf" >"$OUT/pgvpd.log" 2>&1 &
  pids+=($!)
  targets+=("pgvpd:$VPORT:bench_trust.t1")
fi
sleep 1

tps() { # port user args...
  local port=$1 user=$2; shift 2
  pgbench -n -S -T "$SECS" -h 127.0.0.1 -p "$port" -U "$user" "$@" bench 2>"$OUT/pgbench.err" \
    | awk '/^tps = /{printf "%.0f", $3}' || true
}
declare -A R
cols=()
for mode in simple prepared; do for c in 1 8 32; do
  col="$mode c=$c"; cols+=("$col")
  for t in "${targets[@]}"; do
    IFS=: read -r name port user <<<"$t"
    R["$name|$col"]=$(tps "$port" "$user" -M "$mode" -c "$c" -j $(( c < 2 ? c : 2 )))
  done
done; done
col="connect -C c=8"; cols+=("$col")
for t in "${targets[@]}"; do
  IFS=: read -r name port user <<<"$t"
  R["$name|$col"]=$(tps "$port" "$user" -C -c 8 -j 2)
done

echo "pgbench -S, ${SECS}s per cell, scale 10, 2 cores; TPS (ratio to direct)"
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
