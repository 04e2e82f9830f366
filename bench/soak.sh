#!/usr/bin/env bash
# Soak test of tenant-router's pooling (issue #16; not run in CI): 1,000
# clients of 10 tenants through one router in transaction pool mode, pool
# size 20, auth.login = "verify", for SOAK_SECS (300): 10 pgbench processes
# (`pgbench -S`, simple protocol) of SOAK_CLIENTS (100) clients each, one
# tenant each (bench_pw.p0 .. bench_pw.p9, SCRAM). Reports total
# transactions, errors (failed transactions and aborted clients: must be 0,
# else exit 1), the peak number of bench_pw backends, and the router's VmRSS
# sampled every 10 s, minute 1 against the last minute (minute 5 at 300 s).
# Environment: PG_TENANT_DIR, PG_TENANT_PORT (the private cluster),
# SOAK_SECS, SOAK_CLIENTS, POOL_SIZE (20).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/pool_lib.sh"
SECS=${SOAK_SECS:-300}
EACH=${SOAK_CLIENTS:-100}

pool_prepare
if [ "$(has_pool_mode)" = 1 ]; then
  set_pool_mode transaction
else
  echo "soak: tenant.tenants has no pool_mode (pg_tenant < 0.4.0): the router runs the tenants' default mode" >&2
fi
RPORT=$(free_port)
start_router router-soak "$RPORT"
check_login tenant-router "$RPORT" bench_pw.p0

# VmRSS every 10 s: "<seconds since start> <KiB>" (t=0 before any client).
RSS=$OUT/soak-rss.txt; : > "$RSS"
(
  trap 'kill "$sp" 2>/dev/null; exit 0' TERM
  t=0
  while kill -0 "$ROUTER_PID" 2>/dev/null; do
    echo "$t $(rss_kib "$ROUTER_PID")" >> "$RSS"
    sleep 10 & sp=$!; wait "$sp"; t=$((t + 10))
  done
) &
pids+=($!)

users=(); for i in $(seq 0 9); do users+=("bench_pw.p$i"); done
echo "soak: $((10 * EACH)) clients (10 tenants x $EACH), ${SECS}s, router pool size ${POOL_SIZE:-20}, transaction mode"
run_pgbench soak "$RPORT" "$EACH" 1 "${users[@]}" -- -S -M simple -T "$SECS"
AFTER=$(rss_kib "$ROUTER_PID")   # once the clients have left

errors=$((PB_FAILED + PB_ABORTED))
echo
echo "| clients | seconds | transactions | TPS | failed tx | aborted clients | peak backends | pgbench exit |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
echo "| $((10 * EACH)) | $SECS | $PB_XACTS | ${PB_TPS:-0} | $PB_FAILED | $PB_ABORTED | $PB_BACKENDS | $PB_RC |"
if [ -n "$PB_ERR" ]; then echo "first error: $PB_ERR"; fi
echo
echo "router VmRSS (KiB) every 10 s: $(awk '{printf "%s%s:%s", (NR > 1 ? " " : ""), $1, $2}' "$RSS")"
# Minute 1: the sample at 60 s (or the last before it); the last minute: the
# last sample taken while the clients ran (300 s when SOAK_SECS = 300).
m1=$(awk -v s="$(( SECS < 60 ? SECS : 60 ))" '$1 <= s {t = $1; v = $2} END {print t, v}' "$RSS")
mN=$(awk -v s="$SECS" '$1 <= s {t = $1; v = $2} END {print t, v}' "$RSS")
echo "router VmRSS at minute 1 (${m1% *} s): ${m1#* } KiB; at ${mN% *} s: ${mN#* } KiB; growth $(( ${mN#* } - ${m1#* } )) KiB; after the clients left: $AFTER KiB"
if [ "$errors" != 0 ] || [ "$PB_RC" != 0 ]; then
  echo "soak: FAILED ($PB_FAILED failed transactions, $PB_ABORTED aborted clients, pgbench exit $PB_RC)"
  exit 1
fi
echo "soak: no errors"
