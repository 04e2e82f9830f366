#!/usr/bin/env bash
# Benchmark: /metrics and the router's memory with many tenants
# (docs/src/operations/metrics.md), in one run. Creates BENCH_TENANTS tenants (mt-000000...) in
# the database metrics_bench, starts a release tenant-router, connects once
# to BENCH_CONNECT of them (psql, one SELECT 1 each, BENCH_PARALLEL at a
# time), then reports the router's RSS before and after, and for
# BENCH_SCRAPES scrapes of /metrics: time, bytes, lines, tenant series and
# RSS right after each, then RSS after the sweep gave the scrape's memory
# back.
#
#   BENCH_TENANTS (10000), BENCH_CONNECT (= BENCH_TENANTS), BENCH_PARALLEL (4),
#   BENCH_SCRAPES (3), BENCH_ROUTER_PORT (6450), BENCH_ADMIN_PORT (6451)
#
# Uses scripts/cluster as configured by the environment (PG_TENANT_DIR,
# PG_TENANT_PORT, PG_TENANT_NO_INSTALL...).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
N=${BENCH_TENANTS:-10000}
CONNECT=${BENCH_CONNECT:-$N}
PAR=${BENCH_PARALLEL:-4}
SCRAPES=${BENCH_SCRAPES:-3}
RPORT=${BENCH_ROUTER_PORT:-6450}
APORT=${BENCH_ADMIN_PORT:-6451}
export PG_TENANT_DB=metrics_bench
scripts/cluster start >/dev/null
eval "$(scripts/cluster env)"
scripts/cluster psql -q <<SQL
SET client_min_messages = warning;
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bench_trust') THEN
    CREATE ROLE bench_trust LOGIN IN ROLE hba_trust;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bench_router') THEN
    CREATE ROLE bench_router LOGIN IN ROLE tenant_router;
  END IF;
  PERFORM tenant.create_app_role('bench_trust');
  PERFORM tenant.create_tenant(format('mt-%s', lpad(i::text, 6, '0')))
     FROM generate_series(0, $N - 1) i
    WHERE NOT EXISTS (SELECT 1 FROM tenant.tenants WHERE id = format('mt-%s', lpad(i::text, 6, '0')));
END \$\$;
SQL
cargo build --release -q -p tenant-router --offline
OUT=$ROOT/bench/out; mkdir -p "$OUT"
TARGET=${CARGO_TARGET_DIR:-target}
cat > "$OUT/router-metrics.toml" <<TOML
listen = "127.0.0.1:$RPORT"
upstream = "127.0.0.1:$PGPORT"
context_signing_key_file = "$PG_TENANT_KEY_FILE"
admin_listen = "127.0.0.1:$APORT"
max_client_connections = 1000
[catalog]
url = "host=$PG_TENANT_SOCK port=$PGPORT user=bench_router dbname=$PG_TENANT_DB"
TOML
"$TARGET/release/tenant-router" -c "$OUT/router-metrics.toml" 2>"$OUT/router-metrics.log" &
ROUTER=$!
trap 'kill $ROUTER 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$RPORT") 2>/dev/null && break; sleep 0.1; done
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$ROUTER/status"; }

echo "tenant-router (release), $N tenants in the catalog, $CONNECT connected once each"
echo "RSS at start: $(rss) kB"
t0=$(date +%s.%N)
seq 0 $((CONNECT - 1)) | xargs -P "$PAR" -I{} sh -c \
  'psql -X -q -At "host=127.0.0.1 port='"$RPORT"' user=bench_trust.mt-$(printf %06d {}) dbname='"$PG_TENANT_DB"'" -c "SELECT 1" >/dev/null'
t1=$(date +%s.%N)
printf "connected in %.1f s\n" "$(echo "$t1 - $t0" | bc -l)"
echo "RSS after the connections: $(rss) kB"
echo "| scrape | seconds | bytes | lines | tenant series | RSS after (kB) |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: |"
for i in $(seq "$SCRAPES"); do
  s=$(curl -s -o "$OUT/metrics.txt" -w '%{time_total}' "http://127.0.0.1:$APORT/metrics")
  printf "| %d | %s | %d | %d | %d | %s |\n" "$i" "$s" "$(wc -c < "$OUT/metrics.txt")" \
    "$(wc -l < "$OUT/metrics.txt")" "$(grep -v '^#' "$OUT/metrics.txt" | grep -c 'tenant="')" "$(rss)"
done
sleep 2 # one sweep tick: the memory a large scrape freed goes back (malloc_trim)
echo "RSS 2 s later: $(rss) kB"
echo "tenants held: $(grep '^tenant_router_tenants_tracked ' "$OUT/metrics.txt" | cut -d' ' -f2)"
