#!/usr/bin/env bash
# Benchmark (issue #28): `tenant-router tenants move` of a tenant with
# BENCH_ROWS (1,000,000) rows between two local clusters while a client
# writes to it continuously through the router and another tenant runs
# pgbench through the router. Not run by CI.
#
#   setup    two private clusters (scripts/cluster: A, the main upstream and
#            catalog, and B, upstream "b"), database bench_move; table items
#            (bigserial id, tenant_id, body; primary key (tenant_id, id)),
#            protected; tenants bm-moved (BENCH_ROWS rows) and bm-other
#            (10,000 rows), both pool_mode transaction; a release router
#            (verify logins, pool size 8) with [upstreams.b]
#   load     writer (bench/move_writer.py): one client as bm-moved, one
#            INSERT per transaction, per-transaction log; other: pgbench -c 4
#            -T BENCH_OTHER_SECONDS (60) as bm-other (a point read and an
#            INSERT per transaction), per-transaction log
#   move     after BENCH_BEFORE (10) s: tenants move bm-moved --to b
#   after    BENCH_AFTER (5) s more, then both stop
#   checks   rows lost or duplicated: every (id, hash of the row) of the
#            tenant on A (the source keeps its rows: no --drop-source) must
#            be on B exactly once, and B must hold BENCH_ROWS + the writer's
#            committed transactions; the writer's longest transaction during
#            the move; the other tenant's TPS before the move and during it.
#
# Environment: PG_TENANT_PGBIN (the PostgreSQL bin dir, default
# scripts/cluster's), BENCH_DIR (/var/tmp/pg_tenant_bench_move: A and B live
# under it), BENCH_PORT_A / BENCH_PORT_B (default: ports the OS picks),
# BENCH_ROWS, BENCH_BEFORE, BENCH_AFTER, BENCH_OTHER_SECONDS,
# BENCH_MOVE_ARGS (more arguments of tenants move, e.g. "--verify"),
# PG_TENANT_PROFILE (release; debug builds the debug router and extension).
# `bench/move.sh stop` stops both clusters.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DIR=${BENCH_DIR:-/var/tmp/pg_tenant_bench_move}
ROWS=${BENCH_ROWS:-1000000}
BEFORE=${BENCH_BEFORE:-10}
AFTER=${BENCH_AFTER:-5}
OTHER_SECONDS=${BENCH_OTHER_SECONDS:-60}
PROFILE=${PG_TENANT_PROFILE:-release}
DB=bench_move
OUT=$ROOT/bench/out/move
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
mkdir -p "$OUT" "$DIR"
# Ports are kept with the clusters (a cluster keeps the port it was made with).
[ -f "$DIR/ports" ] || echo "${BENCH_PORT_A:-$(free_port)} ${BENCH_PORT_B:-$(free_port)}" > "$DIR/ports"
read -r PORT_A PORT_B < "$DIR/ports"
cl() { # cl a|b cluster-args...
  local which=$1; shift
  local port=$PORT_A
  [ "$which" = b ] && port=$PORT_B
  local extra=()
  [ "$which" = b ] && extra=(PG_TENANT_NO_INSTALL=1)
  env "${extra[@]}" PG_TENANT_DIR="$DIR/$which" PG_TENANT_PORT="$port" PG_TENANT_DB=$DB \
    PG_TENANT_PROFILE="$PROFILE" scripts/cluster "$@"
}
if [ "${1:-}" = stop ]; then cl a stop; cl b stop; exit 0; fi

cl a start >/dev/null
mkdir -p "$DIR/b"
cp "$DIR/a/context_signing_key.pem" "$DIR/b/context_signing_key.pem"
cl b start >/dev/null
eval "$(cl a env)"
SOCK_A=$PG_TENANT_SOCK
PGBIN=$PG_TENANT_PGBIN_DIR
SOCK_B=$DIR/b/sock
KEY=$PG_TENANT_KEY_FILE
if [ "$PROFILE" = release ]; then
  cargo build --release -q -p tenant-router
else
  cargo build -q -p tenant-router
fi
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/tenant-router
psql_a() { runuser -u postgres -- "$PGBIN/psql" -X -q -tA -v ON_ERROR_STOP=1 -h "$SOCK_A" -p "$PORT_A" -U postgres -d $DB "$@"; }
psql_b() { runuser -u postgres -- "$PGBIN/psql" -X -q -tA -v ON_ERROR_STOP=1 -h "$SOCK_B" -p "$PORT_B" -U postgres -d $DB "$@"; }

echo "setup: $ROWS rows of bm-moved on A (port $PORT_A), B on port $PORT_B"
for p in a b; do
  f=psql_$p
  $f -c "DROP TABLE IF EXISTS items; DELETE FROM tenant.fenced" >/dev/null
  $f -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots" >/dev/null
done
psql_b -c "DROP SUBSCRIPTION IF EXISTS pgt_move_bm_moved_$(printf bm-moved | sha256sum | cut -c1-8)" >/dev/null 2>&1 || true
psql_a >/dev/null <<SQL
SET client_min_messages = warning;
DROP PUBLICATION IF EXISTS pgt_move_bm_moved_$(printf bm-moved | sha256sum | cut -c1-8);
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bm_app') THEN
    SET LOCAL password_encryption = 'scram-sha-256';
    CREATE ROLE bm_app LOGIN PASSWORD 'bm-secret';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bm_router') THEN
    CREATE ROLE bm_router LOGIN IN ROLE tenant_router;
  END IF;
END \$\$;
SELECT tenant.create_app_role('bm_app');
SELECT tenant.drop_tenant(id) FROM tenant.tenants WHERE id IN ('bm-moved', 'bm-other');
CREATE TABLE items (id bigserial, tenant_id text NOT NULL, body text NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT tenant.protect('items');
GRANT SELECT, INSERT ON items TO bm_app;
GRANT USAGE ON SEQUENCE items_id_seq TO bm_app;
SELECT tenant.create_tenant(t, pool_mode => 'transaction', max_connections => 0)
  FROM unnest(ARRAY['bm-moved', 'bm-other']) t;
INSERT INTO items (tenant_id, body) SELECT 'bm-moved', md5(g::text) FROM generate_series(1, $ROWS) g;
INSERT INTO items (tenant_id, body) SELECT 'bm-other', md5(g::text) FROM generate_series(1, 10000) g;
ANALYZE items;
SQL
VERIFIER=$(psql_a -c "SELECT rolpassword FROM pg_authid WHERE rolname = 'bm_app'")
psql_b >/dev/null <<SQL
SET client_min_messages = warning;
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bm_app') THEN CREATE ROLE bm_app LOGIN; END IF;
END \$\$;
ALTER ROLE bm_app PASSWORD '$VERIFIER';
SELECT tenant.create_app_role('bm_app');
SQL

RPORT=$(free_port); APORT=$(free_port)
TOKEN=bench-move-token-0123456789
cat > "$OUT/router.toml" <<EOF
listen = "127.0.0.1:$RPORT"
upstream = "127.0.0.1:$PORT_A"
context_signing_key_file = "$KEY"
admin_listen = "127.0.0.1:$APORT"
admin_token = "$TOKEN"
[auth]
login = "verify"
[pool]
enabled = true
size = 8
[catalog]
url = "host=$SOCK_A port=$PORT_A user=bm_router dbname=$DB"
[upstreams.b]
address = "127.0.0.1:$PORT_B"
EOF
TENANT_ROUTER_LOG=warn "$BIN" -c "$OUT/router.toml" 2> "$OUT/router.log" &
ROUTER=$!
trap 'kill $ROUTER 2>/dev/null || true' EXIT
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$RPORT) 2>/dev/null && break; sleep 0.1; done

cat > "$OUT/other.sql" <<'EOF'
\set k random(1, 1000000)
SELECT body FROM items WHERE id = :k;
INSERT INTO items (body) VALUES ('other');
EOF
rm -f "$OUT"/other_log* "$OUT/stop" "$OUT/writer.log"
python3 bench/move_writer.py --stop "$OUT/stop" --log "$OUT/writer.log" \
  --dsn "host=127.0.0.1 port=$RPORT user=bm_app.bm-moved password=bm-secret dbname=$DB" > "$OUT/writer.json" &
WRITER=$!
(cd "$OUT" && PGPASSWORD=bm-secret exec pgbench -n -h 127.0.0.1 -p "$RPORT" -U bm_app.bm-other -c 4 -j 2 \
  -T "$OTHER_SECONDS" -f other.sql --log --log-prefix=other_log $DB > other.out 2>&1) &
OTHER=$!
sleep "$BEFORE"
MOVE_START=$(date +%s.%N)
"$BIN" tenants move -c "$OUT/router.toml" --url "host=$SOCK_A port=$PORT_A user=postgres dbname=$DB" \
  --pg-bin "$PGBIN" ${BENCH_MOVE_ARGS:-} bm-moved --to b | tee "$OUT/move.log"
MOVE_END=$(date +%s.%N)
echo "$MOVE_START $MOVE_END" > "$OUT/move_times"
sleep "$AFTER"
touch "$OUT/stop"
wait $WRITER
echo "waiting for pgbench (-T $OTHER_SECONDS) to finish"
wait $OTHER || true

# Checks.
cat "$OUT"/other_log* > "$OUT/other.all"
WRITTEN=$(grep -c ' ok$' "$OUT/writer.log" || true)
MAX_A=$(psql_a -c "SELECT max(id) FROM items WHERE tenant_id = 'bm-moved'")
psql_a -c "COPY (SELECT id, hashtext(r::text) FROM items r WHERE tenant_id = 'bm-moved' ORDER BY id) TO STDOUT" > "$OUT/rows_a"
psql_b -c "COPY (SELECT id, hashtext(r::text) FROM items r WHERE tenant_id = 'bm-moved' AND id <= $MAX_A ORDER BY id) TO STDOUT" > "$OUT/rows_b"
LC_ALL=C sort -o "$OUT/rows_a" "$OUT/rows_a"
LC_ALL=C sort -o "$OUT/rows_b" "$OUT/rows_b"
DIFF=$(LC_ALL=C comm -3 "$OUT/rows_a" "$OUT/rows_b" | wc -l)
ON_B=$(psql_b -c "SELECT count(*) FROM items WHERE tenant_id = 'bm-moved'")
DUPS=$(psql_b -c "SELECT count(*) - count(DISTINCT id) FROM items WHERE tenant_id = 'bm-moved'")
EXPECTED=$((ROWS + WRITTEN))
ERRORS=$(( $(grep -c ' error' "$OUT/writer.log" || true) + $(grep -ci 'error' "$OUT/other.out" || true) ))
# writer.log: end_epoch latency_ms status.
awk -v s="$MOVE_START" -v e="$MOVE_END" '{ if ($1 >= s && $1 - $2 / 1000 <= e && $2 > m) m = $2 } END { printf "%.1f", m }' "$OUT/writer.log" > "$OUT/longest_ms"
# pgbench log: client tx latency_us script epoch_s epoch_us.
awk -v s="$MOVE_START" -v e="$MOVE_END" -v b="$BEFORE" '{ t = $5 + $6 / 1e6; if (t < s && t >= s - b) before++; if (t >= s && t <= e) during++ }
  END { printf "%.0f %.0f\n", before / b, during / (e - s) }' "$OUT/other.all" > "$OUT/tps"
read -r TPS_BEFORE TPS_DURING < "$OUT/tps"
PAUSED=$(grep -o 'paused for [0-9]* ms' "$OUT/move.log" | grep -o '[0-9]*' || echo "?")
printf '\n%-52s %s\n' "move (wall, s)" "$(awk -v s="$MOVE_START" -v e="$MOVE_END" 'BEGIN { printf "%.2f", e - s }')"
printf '%-52s %s\n' "pause to flip checks done (ms, from the move's log)" "$PAUSED"
printf '%-52s %s\n' "writer transactions committed" "$WRITTEN"
printf '%-52s %s\n' "rows of bm-moved on B (expected $EXPECTED)" "$ON_B"
printf '%-52s %s\n' "rows differing, A vs B (lost or changed)" "$DIFF"
printf '%-52s %s\n' "duplicated ids on B" "$DUPS"
printf '%-52s %s\n' "writer's longest transaction during the move (ms)" "$(cat "$OUT/longest_ms")"
printf '%-52s %s\n' "bm-other TPS before / during the move" "$TPS_BEFORE / $TPS_DURING"
printf '%-52s %s\n' "errors in the pgbench outputs" "$ERRORS"
printf '%-52s %s\n' "load average" "$(cut -d' ' -f1-3 /proc/loadavg)"
