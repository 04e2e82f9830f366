"""COPY FROM STDIN through tenant-router with psycopg 3 (text and binary).

usage: copy_psycopg.py HOST PORT USER PASSWORD DBNAME
Prints one line per step; the Rust test (router/tests/copy.rs) checks them.
"""
import sys

import psycopg

host, port, user, password, dbname = sys.argv[1:6]
conn = psycopg.connect(host=host, port=port, user=user, password=password, dbname=dbname,
                       autocommit=True)
cur = conn.cursor()

# Text format, tenant column left out (it defaults to the session's tenant).
with cur.copy("COPY cp_load (sku, qty) FROM STDIN") as copy:
    for i in range(1000):
        copy.write_row((f"py-text-{i}", i))
print(f"text {cur.rowcount}")

# Binary format, the tenant column named with the session's own tenant.
tenant = cur.execute("SELECT tenant.current_tenant_id()").fetchone()[0]
with cur.copy("COPY cp_load (tenant_id, sku, qty) FROM STDIN (FORMAT BINARY)") as copy:
    copy.set_types(["text", "text", "int4"])
    for i in range(1000):
        copy.write_row((tenant, f"py-bin-{i}", i))
print(f"binary {cur.rowcount}")

# One row of another tenant in the middle: the whole COPY is refused.
try:
    with cur.copy("COPY cp_load (tenant_id, sku, qty) FROM STDIN (FORMAT csv)") as copy:
        copy.write(f"{tenant},py-ok-1,1\nglobex,py-evil,2\n{tenant},py-ok-2,3\n")
    print("foreign accepted")
except psycopg.Error as e:
    print(f"foreign refused {e.sqlstate}")

# Control: an unprotected table takes PostgreSQL's own COPY.
with cur.copy("COPY cp_plain_load (note) FROM STDIN") as copy:
    copy.write_row(("plain",))
print(f"plain {cur.rowcount}")

print("visible %d" % cur.execute("SELECT count(*) FROM cp_load").fetchone()[0])
