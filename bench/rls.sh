#!/usr/bin/env bash
# Benchmark: cost of the pg_tenant RLS policy against a hand-written filter,
# on the same 1,000,000 rows / 100 tenants, in one run (docs/src/benchmarks/rls.md).
#   (a) indexed point lookup:  SELECT v FROM rls_rows WHERE id = :id          (policy adds tenant_id = initPlan)
#                         vs   SELECT v FROM plain_rows WHERE tenant_id = 't42' AND id = :id   (no RLS)
#   (b) sequential count:      SELECT count(*) FROM rls_rows                  (index scans off, no parallelism)
#                         vs   SELECT count(*) FROM plain_rows WHERE tenant_id = 't42'
#   (c) per-user point lookup: SELECT v FROM user_rows WHERE id = :id         (tenant policy + per-user policy
#                              on tenant.current_subject(), end user u7 of t42, logged in with a JWT)
#                         vs   SELECT v FROM plain_user_rows WHERE tenant_id = 't42' AND owner = 'u7' AND id = :id
#   (d) per-user count:        SELECT count(*) FROM user_rows                 (index on (tenant_id, owner))
#                         vs   SELECT count(*) FROM plain_user_rows WHERE tenant_id = 't42' AND owner = 'u7'
#       (plans differ: the policy's initPlan parameters give an Index Only Scan
#        using user_rows_owner; the literals a Bitmap Heap Scan of 100 pages)
# Both sides run through tenant-router as bench_trust.t42 (so both pay the
# same proxy cost), with pgbench, alternating A/B rounds; the ratio is
# explicit-filter TPS / policy TPS (1.00 = no overhead; target <= 1.10).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SECS=${BENCH_SECS:-10}
ROUNDS=${BENCH_ROUNDS:-2}
export PG_TENANT_PROFILE=release PG_TENANT_DB=bench
scripts/cluster start >/dev/null
eval "$(scripts/cluster env)"
scripts/cluster psql -f bench/setup.sql >/dev/null
cargo build --release -q -p tenant-router
OUT=$ROOT/bench/out; mkdir -p "$OUT"
RPORT=${BENCH_ROUTER_PORT:-6442}
cat > "$OUT/router-rls.toml" <<TOML
listen = "127.0.0.1:$RPORT"
upstream = "127.0.0.1:$PGPORT"
context_signing_key_file = "$PG_TENANT_KEY_FILE"
[auth]
credentials_file = "$OUT/rls-credentials.toml"
[auth.jwt]
hs256_secret_file = "$OUT/rls-jwt.secret"
allowed_roles = ["bench_trust"]
[catalog]
url = "host=$PG_TENANT_SOCK port=$PGPORT user=bench_router dbname=bench"
TOML
# (c), (d) log in as end user u7 of t42 with a JWT (bench_trust is trust in
# pg_hba.conf, so the credentials file's password is not checked).
printf '[roles]\nbench_trust = "unused"\n' > "$OUT/rls-credentials.toml"
head -c 48 /dev/urandom | base64 > "$OUT/rls-jwt.secret"
chmod 600 "$OUT/rls-credentials.toml" "$OUT/rls-jwt.secret"
JWT=$(python3 -c 'import jwt, sys, time; print(jwt.encode({"sub": "u7", "tenant": "t42", "role": "bench_trust", "exp": int(time.time()) + 7200}, open(sys.argv[1], "rb").read().rstrip(b"\n"), algorithm="HS256"))' "$OUT/rls-jwt.secret")
target/release/tenant-router -c "$OUT/router-rls.toml" 2>"$OUT/router-rls.log" &
ROUTER=$!
trap 'kill $ROUTER 2>/dev/null || true' EXIT
sleep 0.5
printf '\\set id random(1, 1000000)\nSELECT v FROM rls_rows WHERE id = :id;\n' > "$OUT/a_policy.sql"
printf "\\\\set id random(1, 1000000)\nSELECT v FROM plain_rows WHERE tenant_id = 't42' AND id = :id;\n" > "$OUT/a_plain.sql"
echo "SELECT count(*) FROM rls_rows;" > "$OUT/b_policy.sql"
echo "SELECT count(*) FROM plain_rows WHERE tenant_id = 't42';" > "$OUT/b_plain.sql"
printf '\\set id random(1, 1000000)\nSELECT v FROM user_rows WHERE id = :id;\n' > "$OUT/c_policy.sql"
printf "\\\\set id random(1, 1000000)\nSELECT v FROM plain_user_rows WHERE tenant_id = 't42' AND owner = 'u7' AND id = :id;\n" > "$OUT/c_plain.sql"
echo "SELECT count(*) FROM user_rows;" > "$OUT/d_policy.sql"
echo "SELECT count(*) FROM plain_user_rows WHERE tenant_id = 't42' AND owner = 'u7';" > "$OUT/d_plain.sql"
SEQ_OPTS="-c enable_indexscan=off -c enable_bitmapscan=off -c enable_indexonlyscan=off -c max_parallel_workers_per_gather=0"

tps() { # script, extra PGOPTIONS, clients
  local user=bench_trust.t42
  case $1 in c_*|d_*) user=jwt ;; esac
  PGPASSWORD=${JWT} PGOPTIONS="$2" pgbench -n -M prepared -T "$SECS" -c "$3" -j "$3" -f "$OUT/$1" \
    -h 127.0.0.1 -p "$RPORT" -U "$user" bench 2>/dev/null \
    | awk '/^tps = /{printf "%.1f", $3}'
}
run_pair() { # name, opts, clients
  local a=0 b=0 x
  for _ in $(seq "$ROUNDS"); do
    x=$(tps "${1}_policy.sql" "$2" "$3"); a=$(echo "$a + $x" | bc -l)
    x=$(tps "${1}_plain.sql" "$2" "$3"); b=$(echo "$b + $x" | bc -l)
  done
  a=$(echo "$a / $ROUNDS" | bc -l); b=$(echo "$b / $ROUNDS" | bc -l)
  printf "| %-34s | %10.1f | %10.1f | %5.2f |\n" "$4" "$a" "$b" "$(echo "$b / $a" | bc -l)"
}
echo "pg_tenant RLS overhead: ${ROUNDS}x${SECS}s rounds per side, pgbench -M prepared through tenant-router"
echo "| query | policy TPS | explicit filter TPS | ratio |"
echo "| --- | ---: | ---: | ---: |"
run_pair a "" 2 "(a) point lookup by id, 2 clients"
run_pair b "$SEQ_OPTS" 1 "(b) sequential count, 1 client"
run_pair c "" 2 "(c) per-user point lookup, 2 clients"
run_pair d "" 2 "(d) per-user count, 2 clients"
