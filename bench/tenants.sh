#!/usr/bin/env bash
# Benchmark (issue #24): tenant-router with many tenants in the catalog.
# Not run by CI (creating 100,000 tenants takes minutes). For each catalog
# size in BENCH_SIZES (1000 10000 100000), with a fresh release router
# ([pool] on, auth.login = "verify", every client SCRAM as bench_pw):
#
#   first-seen   connection setup (asyncpg, up to ReadyForQuery) to
#                min(BENCH_SEEN, size) distinct tenants, once each, one at
#                a time: the router reads each row from the catalog
#   cached       BENCH_CACHED more connections to tenants seen a moment ago
#   c=8          connections per second of 8 concurrent clients (cached)
#   direct       (once) the same clients straight to PostgreSQL
#   RSS          the router's VmRSS after the first-seen connections, and
#                after a /metrics scrape
#   /metrics     bytes and time of one scrape
#   /tenants     time and bytes of the first page (?limit=100)
#   storm        one statement runs alter_tenant over every tenant while a
#                client keeps logging in (cached tenants and tenants never
#                seen, alternately): the statement's time, the logins
#                during it and their p99 and max setup time, how long until
#                the router had every notification and had re-read every
#                tenant it holds, and how many rows it re-read
#
# Environment: PG_TENANT_DIR (/var/tmp/pg_tenant_bench_tenants), PG_TENANT_PORT
# (25461) for its own private cluster; BENCH_SIZES, BENCH_SEEN (10000),
# BENCH_CACHED (1000). Tenants are m000001 … (kept between runs).
set -euo pipefail
export PG_TENANT_DIR=${PG_TENANT_DIR:-/var/tmp/pg_tenant_bench_tenants}
export PG_TENANT_PORT=${PG_TENANT_PORT:-25461}
source "$(dirname "${BASH_SOURCE[0]}")/pool_lib.sh"
SIZES=${BENCH_SIZES:-1000 10000 100000}
SEEN=${BENCH_SEEN:-10000}
CACHED=${BENCH_CACHED:-1000}
OUT=$ROOT/bench/out/tenants; mkdir -p "$OUT"
CLIENT="python3 $ROOT/bench/tenants_client.py"

pool_prepare
psql_c() { scripts/cluster psql -tAq "$@"; }

# ensure_tenants N: tenants m000001..mN exist and no other m tenant (the
# catalog has N of them and the 10 pool fixtures); prints the seconds
# creating them took.
ensure_tenants() {
  local n=$1 t0 t1
  psql_c -c "SELECT count(tenant.drop_tenant(id)) FROM tenant.tenants
    WHERE id LIKE 'm%' AND id > 'm' || lpad('$n', 6, '0')" >/dev/null
  t0=$(date +%s.%N)
  psql_c -c "SET client_min_messages = warning;
    SELECT count(tenant.create_tenant(id, max_connections => 0, login_roles => '{bench_pw}'))
    FROM (SELECT 'm' || lpad(g::text, 6, '0') AS id FROM generate_series(1, $n) g) s
    WHERE NOT EXISTS (SELECT 1 FROM tenant.tenants t WHERE t.id = s.id)" >/dev/null
  t1=$(date +%s.%N)
  echo "scale=1; ($t1 - $t0) / 1" | bc
}

# start_bench_router PORT ADMIN_PORT: sets ROUTER_PID.
start_bench_router() {
  cat > "$OUT/router.toml" <<TOML
listen = "127.0.0.1:$1"
upstream = "127.0.0.1:$PGPORT"
context_signing_key_file = "$PG_TENANT_KEY_FILE"
admin_listen = "127.0.0.1:$2"
max_client_connections = 5000
[catalog]
url = "host=$PG_TENANT_SOCK port=$PGPORT user=bench_router dbname=bench"
[auth]
login = "verify"
[pool]
enabled = true
size = 20
max_tenant_share = 1.0
TOML
  TENANT_ROUTER_LOG=warn target/release/tenant-router -c "$OUT/router.toml" 2>"$OUT/router.log" &
  ROUTER_PID=$!
  pids+=("$ROUTER_PID")
  wait_port "$1"
}

stop_router() { kill "$ROUTER_PID" 2>/dev/null || true; wait "$ROUTER_PID" 2>/dev/null || true; }
field() { python3 -c "import json,sys; v=json.loads(sys.argv[1]).get('$2'); print('-' if v is None else v)" "$1"; }
sample() { # admin_port series: its value, 0 when absent
  curl -s "http://127.0.0.1:$1/metrics" | awk -v s="$2" '$1 == s {print $2; f=1} END {if (!f) print 0}'
}
mib() { echo "scale=1; $1 / 1024" | bc; }

direct=$($CLIENT --port "$PGPORT" --tenants - --first 1 --last 1 --duration 3)
printf '\ndirect to PostgreSQL: connection setup p50 %s ms, p99 %s ms\n' "$(field "$direct" p50_ms)" "$(field "$direct" p99_ms)"

rows=()
for n in $SIZES; do
  created=$(ensure_tenants "$n")
  total=$(psql_c -c "SELECT count(*) FROM tenant.tenants")
  seen=$(( SEEN < n ? SEEN : n )); step=$(( n / seen ))
  port=$(free_port); admin=$(free_port)
  start_bench_router "$port" "$admin"; wait_port "$admin"
  first=$($CLIENT --port "$port" --first 1 --last "$n" --step "$step")
  cached=$($CLIENT --port "$port" --first 1 --last "$(( (CACHED - 1) * step + 1 ))" --step "$step")
  conc=$($CLIENT --port "$port" --first 1 --last "$(( (CACHED - 1) * step + 1 ))" --step "$step" --concurrency 8)
  rss1=$(rss_kib "$ROUTER_PID")
  scrape=$(curl -s -o "$OUT/metrics.txt" -w '%{size_download} %{time_total}' "http://127.0.0.1:$admin/metrics")
  series=$(grep -vc '^#' "$OUT/metrics.txt" || true)
  rss2=$(rss_kib "$ROUTER_PID")
  page=$(curl -s -o /dev/null -w '%{size_download} %{time_total}' "http://127.0.0.1:$admin/tenants?limit=100")
  rss3=$(rss_kib "$ROUTER_PID")
  # The storm: logins go on (cached tenants and never-seen ones) while one
  # statement changes every tenant.
  notified=$(sample "$admin" tenant_router_catalog_notifications_total)
  rm -f "$OUT/storm.done" "$OUT/storm.ready"
  $CLIENT --port "$port" --first 2 --last "$n" --step "$(( step > 1 ? step / 2 : 1 ))" \
    --until-file "$OUT/storm.done" --ready-file "$OUT/storm.ready" > "$OUT/storm.json" &
  logger=$!; pids+=("$logger")
  for _ in $(seq 300); do [ -e "$OUT/storm.ready" ] && break; sleep 0.1; done
  t0=$(date +%s.%N)
  psql_c -c "SELECT count(tenant.alter_tenant(id, max_query_ms => 60000)) FROM tenant.tenants WHERE id LIKE 'm%'" >/dev/null
  t1=$(date +%s.%N)
  while [ "$(sample "$admin" tenant_router_catalog_notifications_total | cut -d. -f1)" -lt $(( ${notified%.*} + n )) ]; do sleep 0.1; done
  # ... and until it re-read every tenant it holds.
  while [ "$(sample "$admin" tenant_router_catalog_rereads_pending)" != 0 ]; do sleep 0.1; done
  t2=$(date +%s.%N)
  touch "$OUT/storm.done"; wait "$logger"
  storm=$(cat "$OUT/storm.json")
  rereads=$(sample "$admin" tenant_router_catalog_rereads_total)
  psql_c -c "SELECT count(tenant.alter_tenant(id, reset => '{max_query_ms}')) FROM tenant.tenants WHERE id LIKE 'm%'" >/dev/null
  stop_router
  rows+=("$(printf '| %s (%s in catalog) | %s s | %s / %s | %s / %s | %s | %s MiB | %s MiB | %s KB, %s ms, %s series | %s KB, %s ms (RSS %s MiB) | %s s, %s s to notify and re-read; %s logins, p99 %s ms, max %s ms, %s errors; %s re-read |' \
    "$n" "$total" "$created" \
    "$(field "$first" p50_ms)" "$(field "$first" p99_ms)" \
    "$(field "$cached" p50_ms)" "$(field "$cached" p99_ms)" \
    "$(field "$conc" per_second)" \
    "$(mib "$rss1")" "$(mib "$rss2")" \
    "$(( ${scrape% *} / 1000 ))" "$(echo "${scrape#* } * 1000 / 1" | bc)" "$series" \
    "$(( ${page% *} / 1000 ))" "$(echo "${page#* } * 1000 / 1" | bc)" "$(mib "$rss3")" \
    "$(echo "scale=1; ($t1 - $t0) / 1" | bc)" "$(echo "scale=1; ($t2 - $t0) / 1" | bc)" \
    "$(field "$storm" count)" "$(field "$storm" p99_ms)" "$(field "$storm" max_ms)" "$(field "$storm" errors)" "$rereads")")
  for j in "$first" "$cached" "$conc" "$storm"; do
    [ "$(field "$j" errors)" = 0 ] || echo "errors: $j" >&2
  done
done

echo
echo "| tenants | created in | first-seen p50 / p99 ms | cached p50 / p99 ms | c=8 conn/s | RSS after logins | RSS after scrape | /metrics | /tenants?limit=100 | storm: alter_tenant over all |"
echo "|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
