#!/usr/bin/env python3
"""Connection setup through tenant-router for many tenants (bench/tenants.sh).

Each connection: asyncpg connects (startup, SCRAM, the router's catalog
lookup and context, up to ReadyForQuery: the time measured), runs SELECT 1
and checks the tenant, closes. Prints one JSON object: count, errors,
p50/p99/max in ms, connections per second.

    tenants_client.py --port P --user bench_pw --tenants m000001,m000002 ...
    tenants_client.py --port P --user bench_pw --first 1 --last 10000 --step 10
    tenants_client.py ... --concurrency 8 --duration 5   (cycle until time is up)
    tenants_client.py ... --until-file F                  (cycle until F exists)
"""
import argparse
import asyncio
import json
import os
import sys
import time

import asyncpg


def tenant_ids(a):
    if a.tenants:
        return a.tenants.split(",")
    return [f"m{i:06d}" for i in range(a.first, a.last + 1, a.step)]


async def one(a, tenant, lat, errors):
    user = f"{a.user}.{tenant}" if tenant != "-" else a.user
    t = time.perf_counter()
    try:
        c = await asyncpg.connect(host="127.0.0.1", port=a.port, user=user,
                                  password=a.password, database=a.db, ssl=False,
                                  statement_cache_size=0, timeout=30)
    except Exception as e:  # a refused or failed login is counted, not fatal
        errors.append(f"{tenant}: {e}")
        return
    lat.append(time.perf_counter() - t)
    if a.ready_file and not os.path.exists(a.ready_file):
        open(a.ready_file, "w").close()
    try:
        got = await c.fetchval("SELECT tenant.current_tenant_id()")
        if tenant != "-" and got != tenant:
            errors.append(f"{tenant}: got tenant {got}")
    finally:
        await c.close()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", default="bench_pw")
    p.add_argument("--password", default=os.environ.get("PGPASSWORD", ""))
    p.add_argument("--db", default="bench")
    p.add_argument("--tenants", default="")
    p.add_argument("--first", type=int, default=1)
    p.add_argument("--last", type=int, default=1)
    p.add_argument("--step", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--duration", type=float, default=0)
    p.add_argument("--until-file", default="")
    p.add_argument("--ready-file", default="", help="created after the first login")
    a = p.parse_args()
    ids = tenant_ids(a)
    lat, errors = [], []
    started = time.perf_counter()
    cycling = a.duration > 0 or a.until_file

    def more(k):
        if not cycling:
            return k < len(ids)
        if a.until_file:
            return not os.path.exists(a.until_file)
        return time.perf_counter() - started < a.duration

    async def worker(w):
        k = w
        while more(k):
            await one(a, ids[k % len(ids)], lat, errors)
            k += a.concurrency

    await asyncio.gather(*(worker(w) for w in range(a.concurrency)))
    took = time.perf_counter() - started
    lat.sort()

    def pct(q):
        if not lat:
            return None
        return round(lat[min(len(lat) - 1, max(0, int(q * len(lat) + 0.5) - 1))] * 1000, 2)

    print(json.dumps({
        "count": len(lat), "errors": len(errors), "p50_ms": pct(0.50), "p99_ms": pct(0.99),
        "max_ms": round(lat[-1] * 1000, 2) if lat else None,
        "per_second": round(len(lat) / took, 1) if took > 0 else None,
        "first_errors": errors[:3],
    }))


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
