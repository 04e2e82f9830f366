# Shared by bench/pool.sh and bench/soak.sh (sourced, not run): the private
# cluster and fixtures, a release tenant-router with [pool] and
# auth.login = "verify", PgBouncer in transaction mode with SCRAM, pgbench
# runs that count errors, VmRSS and backend sampling, and a cleanup that
# stops everything these scripts started (by pid).
#
# Every client authenticates as bench_pw (SCRAM-SHA-256, password
# $BENCH_PASSWORD) on every path: directly (pg_hba's scram-sha-256 rule),
# through the router (which checks the proof itself, then logs into
# PostgreSQL with the ClientKey) and through PgBouncer (userlist).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PG_TENANT_PROFILE=release PG_TENANT_DB=bench
BENCH_PASSWORD=bench-pw
export PGPASSWORD=$BENCH_PASSWORD PGDATABASE=bench PGCONNECT_TIMEOUT=10
OUT=$ROOT/bench/out/pool; mkdir -p "$OUT"; chmod 755 "$ROOT/bench/out" "$OUT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

pids=()        # processes started here (routers, PgBouncers, samplers, clients), all our children
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The cluster, fixtures, pgbench tables (scale 10) and the router binary.
pool_prepare() {
  scripts/cluster start >/dev/null
  eval "$(scripts/cluster env)"
  export PGPASSWORD=$BENCH_PASSWORD PGDATABASE=bench
  scripts/cluster psql -f bench/pool_setup.sql >/dev/null
  if ! scripts/cluster psql -tAc "SELECT 1 FROM pg_class WHERE relname = 'pgbench_accounts'" | grep -q 1; then
    pgbench -i -q -s 10 -h "$PG_TENANT_SOCK" -p "$PGPORT" -U postgres bench >/dev/null 2>&1
  fi
  scripts/cluster psql -c "GRANT SELECT ON pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history TO bench_pw" >/dev/null
  MAX_CONN=$(scripts/cluster psql -tAc "SHOW max_connections")
  cargo build --release -q -p tenant-router
}

# 1 when the catalog has pool_mode (pg_tenant 0.4.0), else 0.
has_pool_mode() {
  scripts/cluster psql -tAc "SELECT count(*) FROM pg_attribute WHERE attrelid = 'tenant.tenants'::regclass
                             AND attname = 'pool_mode' AND NOT attisdropped"
}

# Set tenants p0..p9 to pool_mode $1 (session | transaction) when the column
# exists; nothing otherwise (the caller reports n/a).
set_pool_mode() {
  [ "$(has_pool_mode)" = 1 ] || return 0
  scripts/cluster psql -v mode="$1" >/dev/null <<'SQL'
SELECT count(tenant.alter_tenant(id, pool_mode => :'mode')) FROM tenant.tenants WHERE id ~ '^p[0-9]$';
SQL
}

# A free TCP port on 127.0.0.1, chosen by the kernel.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() { # port: until it accepts, 15 s at most
  for _ in $(seq 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2; return 1
}

# start_router NAME PORT: tenant-router ($ROUTER_BIN, default this tree's
# release build) with [pool] enabled (size $POOL_SIZE, default 20) and
# auth.login = "verify"; sets ROUTER_PID.
start_router() {
  local name=$1 port=$2
  cat > "$OUT/$name.toml" <<TOML
listen = "127.0.0.1:$port"
upstream = "127.0.0.1:$PGPORT"
context_signing_key_file = "$PG_TENANT_KEY_FILE"
admin_listen = ""
[catalog]
url = "host=$PG_TENANT_SOCK port=$PGPORT user=bench_router dbname=bench"
[auth]
login = "verify"
[pool]
enabled = true
size = ${POOL_SIZE:-20}
# Compared with PgBouncer's one pool of default_pool_size: a tenant may use
# all of it (the default cap keeps a reserve for other tenants).
max_tenant_share = 1.0
TOML
  TENANT_ROUTER_LOG=warn "${ROUTER_BIN:-target/release/tenant-router}" -c "$OUT/$name.toml" 2>"$OUT/$name.log" &
  ROUTER_PID=$!
  pids+=("$ROUTER_PID")
  wait_port "$port"
}

# start_pgbouncer NAME PORT: PgBouncer (Debian package, as postgres) in
# transaction mode, default_pool_size $POOL_SIZE (20), SCRAM for clients and
# for the server, bench_pw's password in the userlist; sets BOUNCER_PID.
start_pgbouncer() {
  local name=$1 port=$2 dir=$OUT/$1
  install -d -o postgres -m 700 "$dir"
  rm -f "$dir/pgbouncer.pid"
  printf '"bench_pw" "%s"\n' "$BENCH_PASSWORD" > "$dir/userlist.txt"
  cat > "$dir/pgbouncer.ini" <<INI
[databases]
bench = host=127.0.0.1 port=$PGPORT dbname=bench
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = transaction
max_client_conn = 5000
default_pool_size = ${POOL_SIZE:-20}
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
  chown postgres "$dir"/*; chmod 600 "$dir"/*
  # In the foreground as our own child (setpriv execs it as postgres; not
  # -d, not under runuser's extra process), so cleanup stops and reaps it.
  setpriv --reuid=postgres --regid=postgres --init-groups pgbouncer -q "$dir/pgbouncer.ini" &
  BOUNCER_PID=$!
  pids+=("$BOUNCER_PID")
  wait_port "$port"
}

rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }

# check_login NAME PORT USER: bench_pw's password opens a session (and
# says which tenant it got), a wrong one is refused: SCRAM, not trust.
check_login() {
  local name=$1 port=$2 user=$3 got
  got=$(psql -X -tA -h 127.0.0.1 -p "$port" -U "$user" -d bench \
        -c "SELECT current_user || coalesce(' tenant ' || tenant.current_tenant_id(), ' no tenant')" 2>&1) \
    || { echo "login check: $name as $user failed: $got" >&2; return 1; }
  if PGPASSWORD=wrong-password psql -X -tA -h 127.0.0.1 -p "$port" -U "$user" -d bench -c "SELECT 1" >/dev/null 2>&1; then
    echo "login check: $name let $user in with a wrong password (not SCRAM?)" >&2; return 1
  fi
  echo "login check: $name as $user: $got; wrong password refused"
}

# Peak number of bench_pw backends while a command runs (psql \watch over
# the Unix socket, as postgres, every 0.5 s).
start_backend_sampler() {
  echo "SELECT count(*) FROM pg_stat_activity WHERE usename = 'bench_pw' \\watch 0.5" \
    | psql -X -tA -h "$PG_TENANT_SOCK" -p "$PGPORT" -U postgres -d bench >"$OUT/backends.txt" 2>/dev/null &
  SAMPLER_PID=$!
  pids+=("$SAMPLER_PID")
}
stop_backend_sampler() { # prints the peak
  kill "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true
  awk 'NF && $1 ~ /^[0-9]+$/ && $1 > m {m = $1} END {print m + 0}' "$OUT/backends.txt"
}

# CPU time (clock ticks, user + system) of one process; of every PostgreSQL
# process with the children they reaped (backends that exited are in the
# postmaster's); of the children this shell reaped (the pgbench runs).
ticks_of() { if [ -n "${1:-}" ] && [ -r "/proc/$1/stat" ]; then awk '{print $14 + $15}' "/proc/$1/stat"; else echo 0; fi; }
ticks_pg() {
  local t=0 p
  for p in $(pgrep -u postgres -x postgres); do
    t=$((t + $(awk '{print $14 + $15 + $16 + $17}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}
ticks_reaped() { awk '{print $16 + $17}' "/proc/$$/stat"; }

# run_pgbench TAG PORT CLIENTS_EACH JOBS_EACH USER... -- PGBENCH_ARGS...:
# one pgbench per user name, at once, each with CLIENTS_EACH clients; sets
# PB_TPS (sum), PB_XACTS, PB_FAILED, PB_ABORTED, PB_RC (worst exit code),
# PB_ERR (first error line), PB_BACKENDS (peak bench_pw backends) and
# PB_CPU: microseconds of CPU per transaction, "proxy / PostgreSQL /
# pgbench" (the proxy is the process $CPU_PID; 0 when unset).
run_pgbench() {
  local tag=$1 port=$2 each=$3 jobs=$4; shift 4
  local users=() u i=0 rc
  while [ "$1" != -- ]; do users+=("$1"); shift; done; shift
  local bp=()
  rm -f "$OUT/$tag".*
  start_backend_sampler
  local c0 g0 r0; c0=$(ticks_of "${CPU_PID:-}"); g0=$(ticks_pg); r0=$(ticks_reaped)
  for u in "${users[@]}"; do
    pgbench -n -h 127.0.0.1 -p "$port" -U "$u" -c "$each" -j "$jobs" "$@" bench \
      >"$OUT/$tag.$i.out" 2>"$OUT/$tag.$i.err" &
    bp+=($!); pids+=($!); i=$((i + 1))
  done
  PB_RC=0
  for p in "${bp[@]}"; do rc=0; wait "$p" || rc=$?; if [ "$rc" -gt "$PB_RC" ]; then PB_RC=$rc; fi; done
  local c1 g1 r1; c1=$(ticks_of "${CPU_PID:-}"); g1=$(ticks_pg); r1=$(ticks_reaped)
  PB_BACKENDS=$(stop_backend_sampler)
  PB_TPS=$(cat "$OUT/$tag".*.out | awk '/^tps = /{s += $3; n++} END {if (n) printf "%.0f", s}')
  PB_XACTS=$(cat "$OUT/$tag".*.out | awk '/^number of transactions actually processed:/{s += $NF} END {print s + 0}')
  PB_FAILED=$(cat "$OUT/$tag".*.out | awk '/^number of failed transactions:/{s += $5} END {print s + 0}')
  PB_ABORTED=$(cat "$OUT/$tag".*.err | grep -c 'client [0-9]* aborted' || true)
  PB_ERR=$(cat "$OUT/$tag".*.err | grep -m1 -E 'error|FATAL' | cut -c1-200 || true)
  local tck; tck=$(getconf CLK_TCK)
  if [ "$PB_XACTS" -gt 0 ]; then
    PB_CPU=$(awk -v p=$((c1 - c0)) -v g=$((g1 - g0)) -v r=$((r1 - r0)) -v n="$PB_XACTS" -v t="$tck" \
      'BEGIN {u = 1e6 / t / n; printf "%.0f / %.0f / %.0f", p * u, g * u, r * u}')
  else PB_CPU=n/a; fi
}

# idle_clients NAME PID PORT USER N: open N authenticated connections with
# psycopg, count them established on PORT, and print the growth of PID's
# VmRSS per connection (KiB). Sets IDLE_OPEN, IDLE_ESTAB, IDLE_KIB.
idle_clients() {
  local name=$1 pid=$2 port=$3 user=$4 n=$5 before after ready=$OUT/$1.idle
  psql -X -tA -h 127.0.0.1 -p "$port" -U "$user" -d bench -c "SELECT 1" >/dev/null  # warm: catalog, pool
  sleep 1
  before=$(rss_kib "$pid")
  rm -f "$ready"
  python3 bench/idle_clients.py "host=127.0.0.1 port=$port user=$user dbname=bench" "$n" "$ready" \
    2>"$OUT/$name.idle.err" &
  local py=$!; pids+=("$py")
  for _ in $(seq 1200); do [ -s "$ready" ] && break; kill -0 "$py" 2>/dev/null || break; sleep 0.1; done
  IDLE_OPEN=$(awk '{print $1}' "$ready" 2>/dev/null || echo 0)
  sleep 1
  IDLE_ESTAB=$(ss -Htn state established "( sport = :$port )" | wc -l)
  after=$(rss_kib "$pid")
  kill "$py" 2>/dev/null || true; wait "$py" 2>/dev/null || true
  if [ "${IDLE_OPEN:-0}" -gt 0 ]; then
    IDLE_KIB=$(echo "($after - $before) / $IDLE_OPEN" | bc -l | xargs printf "%.1f")
  else
    IDLE_KIB=n/a
  fi
  IDLE_BEFORE=$before IDLE_AFTER=$after
}
