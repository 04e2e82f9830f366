#!/usr/bin/env bash
# Benchmark: what the 0.5.0 budgets (GUC ceilings, counted advisory locks,
# the refused-function checks and the pass-through hooks) cost on the hot
# path, against the library of an earlier commit, in one run
# (docs/src/benchmarks/budgets.md). Both libraries serve the same database (the 0.4.0 library
# reads a 0.5.0 catalog as it reads an older one); between sides the
# cluster restarts with the other pg_tenant.so and the router restarts too.
#   (s) pgbench -S (built-in point SELECT on pgbench_accounts), 2 clients
#   (a) bench/rls.sh's (a): SELECT v FROM rls_rows WHERE id = :id (RLS), 2 clients
# through tenant-router as bench_trust.t42, pgbench -M prepared, alternating
# old/new rounds. Ratio = new TPS / old TPS (1.00 = free; goal >= 0.98).
#
#   bench/budgets.sh [OLD_REV]      (default: 3a8fa1c, the last 0.4.0 commit)
#   BENCH_SECS (15), BENCH_ROUNDS (5); each side is warmed up (5 s) after
#   its restart before it is measured
#
# Swaps the installed pg_tenant.so while it runs (renamed into place, as
# scripts/install-extension does; the current one is put back on exit):
# run it with no other cluster starting meanwhile.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OLD_REV=${1:-3a8fa1c}
SECS=${BENCH_SECS:-15}
ROUNDS=${BENCH_ROUNDS:-5}
export PG_TENANT_PROFILE=release PG_TENANT_DB=bench
# The old revision builds for PostgreSQL 15 only (before #27): compare on 15.
export PG_TENANT_PG=${PG_TENANT_PG:-15}
OUT=$ROOT/bench/out; mkdir -p "$OUT"

scripts/cluster start >/dev/null
eval "$(scripts/cluster env)"
PG_CONFIG=$PG_TENANT_PGBIN_DIR/pg_config
LIBDIR=$($PG_CONFIG --pkglibdir)
scripts/cluster psql -f bench/setup.sql >/dev/null
if [ "$(scripts/cluster psql -tA -c "SELECT to_regclass('pgbench_accounts') IS NOT NULL")" != t ]; then
  runuser -u postgres -- pgbench -q -i -s 10 -h "$PG_TENANT_SOCK" -p "$PGPORT" bench >/dev/null 2>&1
fi
scripts/cluster psql -c "GRANT SELECT ON pgbench_accounts, pgbench_branches, pgbench_tellers TO bench_trust" >/dev/null
cargo build --release -q -p tenant-router

# The libraries: this tree's (installed by scripts/cluster) and OLD_REV's.
cp "$LIBDIR/pg_tenant.so" "$OUT/pg_tenant.new.so"
OLD_TREE=/var/tmp/pg_tenant_bench_old
if [ "$(git -C "$OLD_TREE" rev-parse HEAD 2>/dev/null)" != "$(git rev-parse "$OLD_REV")" ]; then
  rm -rf "$OLD_TREE"; git worktree prune
  git worktree add -f --detach "$OLD_TREE" "$OLD_REV" >/dev/null
fi
if [ ! -f "$OUT/pg_tenant.old.so" ] || [ "$(cat "$OUT/pg_tenant.old.rev" 2>/dev/null)" != "$OLD_REV" ]; then
  echo "budgets: building pg_tenant at $OLD_REV (release)" >&2
  PKG=$(mktemp -d /var/tmp/pg_tenant_bench_pkg.XXXXXX)
  (cd "$OLD_TREE/pg_tenant_ext" && CARGO_TARGET_DIR="$ROOT/target/bench-old" \
     cargo pgrx package --pg-config "$PG_CONFIG" --out-dir "$PKG" >/dev/null)
  cp "$PKG$LIBDIR/pg_tenant.so" "$OUT/pg_tenant.old.so"
  echo "$OLD_REV" > "$OUT/pg_tenant.old.rev"
  rm -rf "$PKG"
fi

RPORT=${BENCH_ROUTER_PORT:-6443}
cat > "$OUT/router-budgets.toml" <<TOML
listen = "127.0.0.1:$RPORT"
upstream = "127.0.0.1:$PGPORT"
context_signing_key_file = "$PG_TENANT_KEY_FILE"
[catalog]
url = "host=$PG_TENANT_SOCK port=$PGPORT user=bench_router dbname=bench"
TOML
printf '\\set id random(1, 1000000)\nSELECT v FROM rls_rows WHERE id = :id;\n' > "$OUT/budgets_a.sql"

ROUTER=
put_lib() { install -m 644 "$1" "$LIBDIR/pg_tenant.so.new.$$"; mv -f "$LIBDIR/pg_tenant.so.new.$$" "$LIBDIR/pg_tenant.so"; }
cleanup() {
  [ -n "$ROUTER" ] && kill "$ROUTER" 2>/dev/null || true
  put_lib "$OUT/pg_tenant.new.so"
  runuser -u postgres -- "$PG_TENANT_PGBIN_DIR/pg_ctl" -D "$PG_TENANT_DATA" -w restart -m fast >/dev/null 2>&1 || true
}
trap cleanup EXIT
use_side() { # old|new: that library in the cluster, a fresh router
  [ -n "$ROUTER" ] && { kill "$ROUTER" 2>/dev/null || true; wait "$ROUTER" 2>/dev/null || true; }
  put_lib "$OUT/pg_tenant.$1.so"
  runuser -u postgres -- "$PG_TENANT_PGBIN_DIR/pg_ctl" -D "$PG_TENANT_DATA" -w restart -m fast >/dev/null
  target/release/tenant-router -c "$OUT/router-budgets.toml" 2>"$OUT/router-budgets.log" &
  ROUTER=$!
  for _ in $(seq 50); do
    psql -X -tA -h 127.0.0.1 -p "$RPORT" -U bench_trust.t42 -d bench -c 'SELECT 1' >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "budgets: the router did not come up" >&2; exit 1
}
tps() { # pgbench args...
  pgbench -n -M prepared -T "${T:-$SECS}" -c 2 -j 2 -h 127.0.0.1 -p "$RPORT" -U bench_trust.t42 "$@" bench 2>/dev/null \
    | awk '/^tps = /{printf "%.1f", $3}'
}
declare -A SUM=([old_s]=0 [new_s]=0 [old_a]=0 [new_a]=0) RATIOS=([s]="" [a]="")
for _ in $(seq "$ROUNDS"); do
  declare -A THIS=()
  for side in old new; do
    use_side "$side"
    T=3 tps -S >/dev/null; T=2 tps -f "$OUT/budgets_a.sql" >/dev/null   # warm-up after the restart
    THIS[${side}_s]=$(tps -S)
    THIS[${side}_a]=$(tps -f "$OUT/budgets_a.sql")
    SUM[${side}_s]=$(echo "${SUM[${side}_s]} + ${THIS[${side}_s]}" | bc -l)
    SUM[${side}_a]=$(echo "${SUM[${side}_a]} + ${THIS[${side}_a]}" | bc -l)
  done
  for q in s a; do
    RATIOS[$q]+=" $(printf '%.3f' "$(echo "${THIS[new_$q]} / ${THIS[old_$q]}" | bc -l)")"
  done
done
row() { # name key
  local o n
  o=$(echo "${SUM[old_$2]} / $ROUNDS" | bc -l); n=$(echo "${SUM[new_$2]} / $ROUNDS" | bc -l)
  printf "| %-44s | %9.1f | %9.1f | %5.3f | %s |\n" "$1" "$o" "$n" "$(echo "$n / $o" | bc -l)" "${RATIOS[$2]# }"
}
echo "pg_tenant budgets overhead: $OLD_REV vs $(git rev-parse --short HEAD), ${ROUNDS}x${SECS}s alternating rounds, through tenant-router"
echo "| query | $OLD_REV TPS | this tree TPS | ratio | ratio per round |"
echo "| --- | ---: | ---: | ---: | --- |"
row "(s) pgbench -S, 2 clients" s
row "(a) RLS point lookup (bench/rls.sh a), 2 clients" a
