"""Named prepared statements of short-lived clients in transaction pooling.

usage: prepared_churn.py psycopg|asyncpg HOST PORT USER PASSWORD DBNAME

psycopg: 5 clients one after another, each running a ~110 KB `IN (...)`
query 7 times with default settings (psycopg prepares it, as `_pg3_0`,
from the 5th run: the same name on the same backend for every client).
asyncpg: 40 clients one after another, each running 5 distinct queries
(asyncpg names each statement uniquely), then leaving.
Both then print what a last client sees on the (one-backend) pool:
the named statements PostgreSQL holds there. Errors are counted by
SQLSTATE, never raised. The Rust test (router/tests/router_bounds.rs)
checks the lines.
"""
import asyncio
import sys

mode, host, port, user, password, dbname = sys.argv[1:7]
errors = {}


def count(e):
    code = getattr(e, "sqlstate", None) or type(e).__name__
    errors[code] = errors.get(code, 0) + 1


def run_psycopg():
    import psycopg

    ids = ",".join(str(i) for i in range(1, 20001))
    sql = f"SELECT count(*) FROM notes WHERE id IN ({ids}) OR %s::int = 0"
    runs = 0
    for _ in range(5):
        with psycopg.connect(host=host, port=port, user=user, password=password,
                             dbname=dbname, autocommit=True) as c:
            for i in range(7):
                try:
                    c.execute(sql, (i + 1,)).fetchone()
                    runs += 1
                except psycopg.Error as e:
                    count(e)
    with psycopg.connect(host=host, port=port, user=user, password=password,
                         dbname=dbname, autocommit=True) as c:
        held = c.execute("SELECT count(*) FROM pg_prepared_statements",
                         prepare=False).fetchone()[0]
    print(f"psycopg runs={runs} errors={sorted(errors.items())} held={held}")


async def run_asyncpg():
    import asyncpg

    runs = 0
    for n in range(40):
        c = await asyncpg.connect(host=host, port=int(port), user=user,
                                  password=password, database=dbname)
        try:
            for q in range(5):
                try:
                    await c.fetchval(f"SELECT $1::int + {q} + 0 * {n}", q)
                    runs += 1
                except asyncpg.PostgresError as e:
                    count(e)
        finally:
            await c.close()
    c = await asyncpg.connect(host=host, port=int(port), user=user,
                              password=password, database=dbname)
    held = await c.fetchval("SELECT count(*) FROM pg_prepared_statements")
    await c.close()
    print(f"asyncpg runs={runs} errors={sorted(errors.items())} held={held}")


if mode == "psycopg":
    run_psycopg()
else:
    asyncio.run(run_asyncpg())
