#!/usr/bin/env bash
# Benchmark: bulk loading by a tenant (docs/src/benchmarks/copy.md), in one run.
# 1,000,000 rows (id, sku, qty, note; 40 MB of CSV) loaded by tenant t42
# through tenant-router with psql, three ways, alternating rounds:
#   (a) COPY FROM STDIN into a table protected by tenant.protect (pg_tenant
#       runs the COPY with its per-row tenant check)
#   (b) COPY FROM STDIN into the same table without RLS (the baseline)
#   (c) multi-row INSERTs (1,000 rows per statement) into the protected table
# Both tables have the same columns, key (tenant_id, id) and a default for
# tenant_id. Goal: (a) >= 0.8x (b).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
ROWS=${BENCH_ROWS:-1000000}
ROUNDS=${BENCH_ROUNDS:-3}
export PG_TENANT_PROFILE=release PG_TENANT_DB=bench
scripts/cluster start >/dev/null
eval "$(scripts/cluster env)"
scripts/cluster psql -f bench/setup.sql >/dev/null
scripts/cluster psql -q <<'SQL'
SET client_min_messages = warning;
CREATE TABLE IF NOT EXISTS copy_rls (tenant_id text NOT NULL, id bigint NOT NULL, sku text,
                                     qty int, note text, PRIMARY KEY (tenant_id, id));
SELECT tenant.protect('copy_rls');
CREATE TABLE IF NOT EXISTS copy_plain (tenant_id text NOT NULL DEFAULT 't42', id bigint NOT NULL,
                                       sku text, qty int, note text, PRIMARY KEY (tenant_id, id));
GRANT SELECT, INSERT ON copy_rls, copy_plain TO bench_trust;
SQL
cargo build --release -q -p tenant-router
OUT=$ROOT/bench/out; mkdir -p "$OUT"
RPORT=${BENCH_ROUTER_PORT:-6443}
cat > "$OUT/router-copy.toml" <<TOML
listen = "127.0.0.1:$RPORT"
upstream = "127.0.0.1:$PGPORT"
context_signing_key_file = "$PG_TENANT_KEY_FILE"
admin_listen = ""
[catalog]
url = "host=$PG_TENANT_SOCK port=$PGPORT user=bench_router dbname=bench"
TOML
target/release/tenant-router -c "$OUT/router-copy.toml" 2>"$OUT/router-copy.log" &
ROUTER=$!
trap 'kill $ROUTER 2>/dev/null || true' EXIT
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$RPORT") 2>/dev/null && break; sleep 0.1; done

# The data, once: CSV for COPY, and the same rows as 1,000-row INSERTs.
CSV=$OUT/copy_rows.csv
INS=$OUT/copy_rows_insert.sql
if [ ! -f "$CSV" ] || [ "$(wc -l < "$CSV")" != "$ROWS" ]; then
  scripts/cluster psql -q -c "COPY (SELECT g, 'sku-' || g, g % 1000, md5(g::text) FROM generate_series(1, $ROWS) g) TO STDOUT (FORMAT csv)" > "$CSV"
  awk -F, 'BEGIN { n = 0 }
    { if (n % 1000 == 0) { if (n) print ";"; printf "INSERT INTO copy_rls (id, sku, qty, note) VALUES " }
      else printf ",";
      printf "(%s,'\''%s'\'',%s,'\''%s'\'')", $1, $2, $3, $4; n++ }
    END { print ";" }' "$CSV" > "$INS"
fi

tenant_psql() { PGUSER=bench_trust.t42 psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$RPORT" -d bench "$@"; }
timed() { # seconds taken by the command
  local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}
reset() { scripts/cluster psql -q -c "TRUNCATE copy_rls, copy_plain; CHECKPOINT"; }
check() { # table: every row must be t42's
  local n; n=$(scripts/cluster psql -tAc "SELECT count(*) FILTER (WHERE tenant_id = 't42') || '/' || count(*) FROM $1")
  [ "$n" = "$ROWS/$ROWS" ] || { echo "bench: $1 holds $n rows of t42, expected $ROWS/$ROWS" >&2; exit 1; }
}
a=0 b=0 c=0
for _ in $(seq "$ROUNDS"); do
  reset; x=$(timed tenant_psql -c "\\copy copy_rls (id, sku, qty, note) FROM '$CSV' CSV"); check copy_rls; a=$(echo "$a + $x" | bc -l)
  reset; x=$(timed tenant_psql -c "\\copy copy_plain (id, sku, qty, note) FROM '$CSV' CSV"); check copy_plain; b=$(echo "$b + $x" | bc -l)
  reset; x=$(timed tenant_psql -f "$INS"); check copy_rls; c=$(echo "$c + $x" | bc -l)
done
rate() { echo "$ROWS * $ROUNDS / $1" | bc -l; }
echo "Tenant bulk load, $ROWS rows x $ROUNDS rounds, psql through tenant-router (mean)"
echo "| method | seconds | rows/s | vs unprotected COPY |"
echo "| --- | ---: | ---: | ---: |"
printf "| (a) COPY into protected table | %.2f | %.0f | %.2f |\n" "$(echo "$a / $ROUNDS" | bc -l)" "$(rate "$a")" "$(echo "$b / $a" | bc -l)"
printf "| (b) COPY into unprotected table | %.2f | %.0f | 1.00 |\n" "$(echo "$b / $ROUNDS" | bc -l)" "$(rate "$b")"
printf "| (c) multi-row INSERT (1,000/stmt) into protected table | %.2f | %.0f | %.2f |\n" "$(echo "$c / $ROUNDS" | bc -l)" "$(rate "$c")" "$(echo "$b / $c" | bc -l)"
