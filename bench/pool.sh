#!/usr/bin/env bash
# Benchmark (issue #16): tenant-router's backend pooling against PgBouncer,
# every client authenticating with SCRAM-SHA-256 as bench_pw (a password,
# not trust). Targets, on the same cluster, in one run:
#   direct               PostgreSQL itself (cells above max_connections - 20: n/a)
#   router session       tenant-router, [pool] enabled, size 20,
#                        auth.login = "verify", tenants' pool_mode session
#   router transaction   the same router, tenants' pool_mode transaction
#   pgbouncer            PgBouncer (Debian package) in transaction mode,
#                        default_pool_size 20, auth_type scram-sha-256
# Cells: pgbench -S (simple protocol) and pgbench -S -C (a new connection per
# transaction) at 8, 32, 128 and 512 clients (-j 2), BENCH_SECS (8) each.
# Router clients are bench_pw.p1 (with BENCH_TENANTS=k > 1, each cell is k
# pgbench processes of clients/k clients, tenants p0..p(k-1), on every target).
# Prints TPS (ratio to PgBouncer), errors per cell (failed transactions +
# aborted clients) with the peak number of bench_pw backends, and memory per
# idle authenticated client (BENCH_IDLE, 1000 connections held open) of the
# router (transaction mode) and of PgBouncer, and for the -S cells the CPU
# each transaction cost the proxy, PostgreSQL and pgbench (from /proc: user
# + system time over the cell / transactions).
#
# Needs pg_tenant 0.4.0 (catalog column pool_mode) for the router rows:
# without it they are n/a (the router runs once, "router session", in the
# tenants' default mode). Environment: PG_TENANT_DIR, PG_TENANT_PORT (the
# private cluster), BENCH_SECS, BENCH_CLIENTS ("8 32 128 512"), BENCH_MODES
# ("simple connect"), BENCH_TENANTS (1), BENCH_IDLE (1000; 0 skips),
# BENCH_PREPARED (1000 asyncpg clients of the prepared-statement churn
# line; 0 skips), POOL_SIZE (20), BENCH_BASELINE (the path of another
# tenant-router binary, e.g. a build of the previous commit: its rows,
# "baseline session" and "baseline transaction", are measured in the same
# run next to this tree's).
#
# The churn line: router RSS before, at its peak and after BENCH_PREPARED
# short-lived asyncpg clients each prepared 20 distinct named statements
# and left, beside PgBouncer. Debian's PgBouncer is 1.18, which predates
# max_prepared_statements (1.21): it is run with asyncpg's defaults (its
# named statements collide or vanish: counted as errors) and with
# statement_cache_size=0 (unnamed statements, what 1.18 requires).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/pool_lib.sh"
SECS=${BENCH_SECS:-8}
CLIENTS=${BENCH_CLIENTS:-8 32 128 512}
MODES=${BENCH_MODES:-simple connect}
TENANTS=${BENCH_TENANTS:-1}
IDLE=${BENCH_IDLE:-1000}
PREPARED=${BENCH_PREPARED:-1000}
MARGIN=20

pool_prepare
HAS_POOL_MODE=$(has_pool_mode)
RPORT=$(free_port)
start_router router "$RPORT"
BPORT=$(free_port)
start_pgbouncer pgbouncer "$BPORT"
BASELINE=${BENCH_BASELINE:-}
if [ -n "$BASELINE" ]; then
  LPORT=$(free_port)
  MAIN_PID=$ROUTER_PID
  ROUTER_BIN=$BASELINE start_router router-baseline "$LPORT"
  BASELINE_PID=$ROUTER_PID
  ROUTER_PID=$MAIN_PID
fi

set_pool_mode session
check_login direct "$PGPORT" bench_pw
check_login tenant-router "$RPORT" bench_pw.p1
check_login pgbouncer "$BPORT" bench_pw
[ -z "$BASELINE" ] || check_login baseline "$LPORT" bench_pw.p1

targets=(direct "router session" "router transaction")
[ -z "$BASELINE" ] || targets+=("baseline session" "baseline transaction")
targets+=(pgbouncer)
declare -A TPS ERR BE NOTE CPU
cols=()
for mode in $MODES; do for c in $CLIENTS; do
  case $mode in simple) cols+=("-S c=$c") ;; connect) cols+=("-S -C c=$c") ;; esac
done; done

# run_target TARGET PORT USER_BASE [PROXY_PID]
run_target() {
  local target=$1 port=$2 base=$3 mode c col k each users i tag
  CPU_PID=${4:-}
  for mode in $MODES; do for c in $CLIENTS; do
    case $mode in simple) col="-S c=$c"; extra=() ;; connect) col="-S -C c=$c"; extra=(-C) ;; esac
    if [ "$target" = direct ] && [ "$c" -gt $((MAX_CONN - MARGIN)) ]; then
      TPS["$target|$col"]=n/a; ERR["$target|$col"]="n/a (max_connections $MAX_CONN)"; continue
    fi
    k=$(( TENANTS < c ? TENANTS : c )); each=$(( c / k )); users=()
    for i in $(seq 0 $((k - 1))); do
      if [ "$base" = bench_pw ]; then users+=(bench_pw)
      elif [ "$k" = 1 ]; then users+=(bench_pw.p1)
      else users+=("bench_pw.p$i"); fi
    done
    tag="${target// /-}.$mode.$c"
    run_pgbench "$tag" "$port" "$each" $(( each < 2 ? each : 2 )) "${users[@]}" -- \
      -S -M simple -T "$SECS" "${extra[@]}"
    TPS["$target|$col"]=${PB_TPS:-0}
    ERR["$target|$col"]="$PB_FAILED / $PB_ABORTED"
    if [ "$PB_RC" != 0 ]; then ERR["$target|$col"]+=" rc=$PB_RC"; fi
    BE["$target|$col"]=$PB_BACKENDS
    CPU["$target|$col"]=$PB_CPU
    if [ -n "$PB_ERR" ]; then NOTE["$target|$col"]=$PB_ERR
    elif [ "$PB_XACTS" = 0 ]; then NOTE["$target|$col"]="no transaction in ${SECS}s (pgbench's -T includes connecting its clients)"; fi
  done; done
}

run_target direct "$PGPORT" bench_pw
if [ "$HAS_POOL_MODE" = 1 ]; then
  set_pool_mode session
  run_target "router session" "$RPORT" bench_pw.p "$ROUTER_PID"
  set_pool_mode transaction
  run_target "router transaction" "$RPORT" bench_pw.p "$ROUTER_PID"
  if [ -n "$BASELINE" ]; then
    set_pool_mode session
    run_target "baseline session" "$LPORT" bench_pw.p "$BASELINE_PID"
    set_pool_mode transaction
    run_target "baseline transaction" "$LPORT" bench_pw.p "$BASELINE_PID"
  fi
else
  # No pool_mode in the catalog (pg_tenant < 0.4.0): run the router as it
  # is, so the script is exercised end to end; its numbers mean nothing
  # for pooling and are reported as n/a.
  run_target "router session" "$RPORT" bench_pw.p
  for col in "${cols[@]}"; do
    NOTE["router session|$col"]="(pool_mode absent) ${TPS["router session|$col"]} TPS, errors ${ERR["router session|$col"]}${NOTE["router session|$col"]:+: ${NOTE["router session|$col"]}}"
    TPS["router session|$col"]=n/a; ERR["router session|$col"]=n/a
    TPS["router transaction|$col"]=n/a; ERR["router transaction|$col"]=n/a
  done
fi
run_target pgbouncer "$BPORT" bench_pw "$BOUNCER_PID"

echo
echo "pgbench -S, ${SECS}s per cell, scale 10, SCRAM-SHA-256 everywhere, pool size ${POOL_SIZE:-20}, -j 2$( [ "$TENANTS" -gt 1 ] && echo ", clients split over $TENANTS pgbench processes/tenants"); TPS (ratio to pgbouncer)"
[ "$HAS_POOL_MODE" = 1 ] || echo "(tenant.tenants has no pool_mode column: pg_tenant < 0.4.0, router rows n/a)"
printf "| target |"; for col in "${cols[@]}"; do printf " %s |" "$col"; done; echo
printf "| --- |"; for _ in "${cols[@]}"; do printf " ---: |"; done; echo
for t in "${targets[@]}"; do
  printf "| %s |" "$t"
  for col in "${cols[@]}"; do
    v=${TPS["$t|$col"]:-}; b=${TPS["pgbouncer|$col"]:-}
    if [ "$v" = n/a ]; then printf " n/a |"
    elif [ -n "$v" ] && [ "$v" != 0 ] && [[ "$b" =~ ^[0-9]+$ ]] && [ "$b" != 0 ]; then
      printf " %s (%.2f) |" "$v" "$(echo "$v / $b" | bc -l)"
    elif [ -n "$v" ] && [ "$v" != 0 ]; then printf " %s |" "$v"
    else printf " failed |"; fi
  done
  echo
done
echo
echo "Errors per cell: failed transactions / aborted clients (peak bench_pw backends)"
printf "| target |"; for col in "${cols[@]}"; do printf " %s |" "$col"; done; echo
printf "| --- |"; for _ in "${cols[@]}"; do printf " ---: |"; done; echo
for t in "${targets[@]}"; do
  printf "| %s |" "$t"
  for col in "${cols[@]}"; do
    e=${ERR["$t|$col"]:-n/a}
    if [[ "$e" == n/a* ]]; then printf " %s |" "$e"; else printf " %s (%s) |" "$e" "${BE["$t|$col"]:-?}"; fi
  done
  echo
done
echo
echo "CPU per transaction, -S cells (microseconds): proxy / PostgreSQL / pgbench"
scols=(); for col in "${cols[@]}"; do [[ "$col" == *-C* ]] || scols+=("$col"); done
printf "| target |"; for col in "${scols[@]}"; do printf " %s |" "$col"; done; echo
printf "| --- |"; for _ in "${scols[@]}"; do printf " ---: |"; done; echo
for t in "${targets[@]}"; do
  printf "| %s |" "$t"
  for col in "${scols[@]}"; do printf " %s |" "${CPU["$t|$col"]:-n/a}"; done
  echo
done
first=1
for t in "${targets[@]}"; do for col in "${cols[@]}"; do
  if [ -n "${NOTE["$t|$col"]:-}" ]; then
    if [ $first = 1 ]; then echo; echo "Notes (a cell's first error line):"; first=0; fi
    echo "- $t, $col: ${NOTE["$t|$col"]}"
  fi
done; done

if [ "$IDLE" -gt 0 ]; then
  # Fresh processes, so memory kept from the cells above does not hide the growth.
  echo
  echo "Memory per idle authenticated client ($IDLE connections held open by psycopg, SCRAM):"
  echo "| target | opened | established | VmRSS before (KiB) | VmRSS after (KiB) | KiB per client |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: |"
  set_pool_mode transaction
  p=$(free_port); start_router router-idle "$p"
  idle_clients router-idle "$ROUTER_PID" "$p" bench_pw.p1 "$IDLE"
  label="router transaction"; [ "$HAS_POOL_MODE" = 1 ] || label="router (no pool_mode column)"
  echo "| $label | $IDLE_OPEN | $IDLE_ESTAB | $IDLE_BEFORE | $IDLE_AFTER | $IDLE_KIB |"
  if [ "$IDLE_OPEN" -lt "$IDLE" ]; then echo "  router: $(cat "$OUT/router-idle.idle")"; fi
  kill "$ROUTER_PID"; wait "$ROUTER_PID" 2>/dev/null || true
  p=$(free_port); start_pgbouncer pgbouncer-idle "$p"
  idle_clients pgbouncer-idle "$BOUNCER_PID" "$p" bench_pw "$IDLE"
  echo "| pgbouncer | $IDLE_OPEN | $IDLE_ESTAB | $IDLE_BEFORE | $IDLE_AFTER | $IDLE_KIB |"
  if [ "$IDLE_OPEN" -lt "$IDLE" ]; then echo "  pgbouncer: $(cat "$OUT/pgbouncer-idle.idle")"; fi
fi
if [ "$PREPARED" -gt 0 ]; then
  # Prepared-statement churn (issue #23): PREPARED asyncpg clients, each
  # preparing 20 distinct named statements and leaving. Fresh processes.
  echo
  echo "Router memory after prepared-statement churn ($PREPARED asyncpg clients, 20 distinct statements each, 50 at a time, transaction pooling):"
  echo "| target | asyncpg statement cache | clients ok | queries ok | errors | VmRSS baseline (KiB) | peak (KiB) | after the clients left (KiB) | after / baseline |"
  echo "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |"
  set_pool_mode transaction
  churn() { # name pid port user cache
    local name=$1 pid=$2 port=$3 user=$4 cache=$5 base peak=0 after out py r
    psql -X -tA -h 127.0.0.1 -p "$port" -U "$user" -d bench -c "SELECT 1" >/dev/null
    # Warm-up: 100 clients, 50 at a time, so every backend of the pool is
    # open (and its buffers held) before the baseline.
    python3 bench/prepared_clients.py 127.0.0.1 "$port" "$user" 100 20 "$cache" >/dev/null 2>&1 || true
    sleep 5
    base=$(rss_kib "$pid")
    python3 bench/prepared_clients.py 127.0.0.1 "$port" "$user" "$PREPARED" 20 "$cache" \
      >"$OUT/$name.churn" 2>"$OUT/$name.churn.err" &
    py=$!; pids+=("$py")
    while kill -0 "$py" 2>/dev/null; do
      r=$(rss_kib "$pid"); [ "$r" -gt "$peak" ] && peak=$r; sleep 0.2
    done
    wait "$py" 2>/dev/null || true
    # The router gives freed memory back at most every 3 s after clients left.
    sleep 5
    after=$(rss_kib "$pid")
    read -r cok qok errs < "$OUT/$name.churn" || { cok=0; qok=0; errs="failed: $(head -1 "$OUT/$name.churn.err")"; }
    echo "| $name | $( [ "$cache" = 0 ] && echo "off (statement_cache_size=0)" || echo "on (default)" ) | $cok | $qok | $errs | $base | $peak | $after | $(echo "$after / $base" | bc -l | xargs printf "%.2f") |"
  }
  p=$(free_port); start_router router-churn "$p"
  churn "router transaction" "$ROUTER_PID" "$p" bench_pw.p1 100
  kill "$ROUTER_PID"; wait "$ROUTER_PID" 2>/dev/null || true
  p=$(free_port); start_pgbouncer pgbouncer-churn "$p"
  churn "pgbouncer $(pgbouncer --version | awk 'NR==1{print $2}')" "$BOUNCER_PID" "$p" bench_pw 100
  churn "pgbouncer $(pgbouncer --version | awk 'NR==1{print $2}')" "$BOUNCER_PID" "$p" bench_pw 0
fi
exit 0
