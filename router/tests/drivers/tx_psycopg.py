"""Prepared statements and pipelining in transaction pooling, psycopg 3.

usage: tx_psycopg.py HOST PORT USER_A USER_B PASSWORD DBNAME
Two clients of two tenants on a pool of one backend: every transaction of
one follows one of the other, so the backend is switched (and its
statements discarded) each time. Prints one line per step; the Rust test
(router/tests/tx_drivers.rs) checks them.
"""
import sys

import psycopg

host, port, user_a, user_b, password, dbname = sys.argv[1:7]


def connect(user):
    return psycopg.connect(host=host, port=port, user=user, password=password,
                           dbname=dbname, autocommit=True)


a, b = connect(user_a), connect(user_b)
sql = "SELECT tenant.current_tenant_id(), count(*) FROM notes WHERE body LIKE %s"
seen = set()
for i in range(20):
    for conn in (a, b):
        # prepare=True: a protocol-level named statement from the first run.
        tenant, n = conn.execute(sql, ("%",), prepare=True).fetchone()
        seen.add((tenant, n))
print("prepared " + " ".join(f"{t}={n}" for t, n in sorted(seen)))

# Pipeline mode: many Parse/Bind/Execute before one Sync.
with b.pipeline():
    curs = [b.execute("SELECT %s::int + 1", (i,), prepare=True) for i in range(50)]
total = sum(c.fetchone()[0] for c in curs)
print(f"pipeline {total}")

# A transaction across statements keeps one backend.
with a.transaction():
    a.execute("SELECT tenant.advisory_xact_lock(7)")
    pid1 = a.execute("SELECT pg_backend_pid()").fetchone()[0]
    pid2 = a.execute("SELECT pg_backend_pid()").fetchone()[0]
print(f"transaction same_backend={pid1 == pid2}")
