"""Short-lived asyncpg clients, each preparing distinct statements.

    python3 bench/prepared_clients.py HOST PORT USER N STATEMENTS CACHE

N clients (at most 50 at a time) connect with asyncpg (password from
PGPASSWORD), each runs STATEMENTS distinct queries (texts no other client
uses, so every one is a new named statement with asyncpg's default
statement cache; CACHE=0 sets statement_cache_size=0, the setting
PgBouncer before 1.21 requires), then leaves. Prints
"<clients ok> <queries ok> <errors by SQLSTATE or class, as k=v,...>".
Used by bench/pool.sh (router RSS after prepared-statement churn).
"""
import asyncio
import os
import sys

import asyncpg


async def main(host, port, user, n, statements, cache):
    gate = asyncio.Semaphore(50)
    errors = {}
    ok = {"clients": 0, "queries": 0}

    def count(e):
        key = getattr(e, "sqlstate", None) or type(e).__name__
        errors[key] = errors.get(key, 0) + 1

    async def one(i):
        async with gate:
            try:
                c = await asyncpg.connect(host=host, port=port, user=user,
                                          password=os.environ.get("PGPASSWORD"),
                                          database="bench",
                                          statement_cache_size=cache)
            except Exception as e:  # counted, not raised
                count(e)
                return
            try:
                for k in range(statements):
                    try:
                        await c.fetchval(f"SELECT $1::int + {k} /* client {i} */", k)
                        ok["queries"] += 1
                    except Exception as e:
                        count(e)
                ok["clients"] += 1
            finally:
                await c.close()

    await asyncio.gather(*(one(i) for i in range(n)))
    errs = ",".join(f"{k}={v}" for k, v in sorted(errors.items())) or "none"
    print(f"{ok['clients']} {ok['queries']} {errs}")


host, port, user, n, statements, cache = sys.argv[1:7]
asyncio.run(main(host, int(port), user, int(n), int(statements), int(cache)))
