#!/usr/bin/env bash
# Benchmark: large messages through tenant-router vs directly, on the same
# cluster, in one run (release build):
#   rows    100 rows of 10 MB (DataRow), read with psql FETCH_COUNT=1
#   copy-out  COPY ... TO STDOUT of ~1 GB (1,000,000 rows of 1 KB)
#   copy-in   COPY ... FROM STDIN of the same ~1 GB (into an unlogged table)
# Each cell is the best of BENCH_ROUNDS (default 3) alternating rounds.
# Prints a Markdown table (MB/s, ratio to direct) and the router's peak RSS.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
ROUNDS=${BENCH_ROUNDS:-3}
export PG_TENANT_PROFILE=release PG_TENANT_DB=bench
scripts/cluster start >/dev/null
eval "$(scripts/cluster env)"
scripts/cluster psql -f bench/setup.sql >/dev/null
scripts/cluster psql -c "CREATE UNLOGGED TABLE IF NOT EXISTS bench_blobs (b text);
  GRANT INSERT, SELECT, TRUNCATE ON bench_blobs TO bench_trust" >/dev/null
cargo build --release -q -p tenant-router
OUT=$ROOT/bench/out; mkdir -p "$OUT"
RPORT=${BENCH_ROUTER_PORT:-6452}
DATA=$OUT/copy-1g.txt
[ -s "$DATA" ] || python3 -c "
import sys
line = ('x' * 1023 + '\n').encode()
with open('$DATA', 'wb') as f:
    for _ in range(1000000): f.write(line)"
BYTES_ROWS=$((100 * 10000000)); BYTES_COPY=$(stat -c %s "$DATA")

cat > "$OUT/large-router.toml" <<TOML
listen = "127.0.0.1:$RPORT"
upstream = "127.0.0.1:$PGPORT"
context_signing_key_file = "$PG_TENANT_KEY_FILE"
admin_listen = ""
[catalog]
url = "host=$PG_TENANT_SOCK port=$PGPORT user=bench_router dbname=bench"
TOML
TENANT_ROUTER_LOG=warn target/release/tenant-router -c "$OUT/large-router.toml" 2>"$OUT/large-router.log" &
RPID=$!
trap 'kill $RPID 2>/dev/null || true' EXIT
for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p "$RPORT" && break; sleep 0.1; done

run() { # port user what -> seconds
  local port=$1 user=$2 what=$3 t0 t1
  local p=(psql -X -q -h 127.0.0.1 -p "$port" -U "$user" -d bench -v ON_ERROR_STOP=1)
  [ "$what" = copy-in ] && scripts/cluster psql -c "TRUNCATE bench_blobs" >/dev/null
  t0=$(date +%s.%N)
  case $what in
    rows) "${p[@]}" -v FETCH_COUNT=1 -Atc "SELECT repeat('x', 10000000) FROM generate_series(1, 100)" >/dev/null ;;
    copy-out) "${p[@]}" -c "COPY (SELECT repeat('x', 1023) FROM generate_series(1, 1000000)) TO STDOUT" >/dev/null ;;
    copy-in) "${p[@]}" -c "\\copy bench_blobs FROM '$DATA'" >/dev/null ;;
  esac
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}
declare -A BEST
for _ in $(seq "$ROUNDS"); do
  for what in rows copy-out copy-in; do
    for t in "direct:$PGPORT:bench_trust" "tenant-router:$RPORT:bench_trust.t1"; do
      IFS=: read -r name port user <<<"$t"
      s=$(run "$port" "$user" "$what")
      cur=${BEST["$name|$what"]:-}
      if [ -z "$cur" ] || [ "$(echo "$s < $cur" | bc -l)" = 1 ]; then BEST["$name|$what"]=$s; fi
    done
  done
done
rss=$(awk '/VmHWM/{print $2, $3}' "/proc/$RPID/status")

echo "best of $ROUNDS rounds; MB/s (ratio to direct)"
echo "| target | 100 rows of 10 MB | COPY TO STDOUT ~1 GB | COPY FROM STDIN ~1 GB |"
echo "| --- | ---: | ---: | ---: |"
for name in direct tenant-router; do
  printf "| %s |" "$name"
  for what in rows copy-out copy-in; do
    bytes=$BYTES_COPY; [ "$what" = rows ] && bytes=$BYTES_ROWS
    mbs=$(echo "$bytes / ${BEST["$name|$what"]} / 1000000" | bc -l)
    d=$(echo "$bytes / ${BEST["direct|$what"]} / 1000000" | bc -l)
    printf " %.0f (%.2f) |" "$mbs" "$(echo "$mbs / $d" | bc -l)"
  done
  echo
done
echo "tenant-router peak RSS (VmHWM): $rss"
