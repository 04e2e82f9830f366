"""A JWT client: mint an HS256 token with PyJWT and connect through the
router with psycopg 3, the token as the password.

usage: jwt_psycopg.py HOST PORT USER DBNAME SECRET_FILE TENANT ROLE SUBJECT

Prints one line: tenant|subject|email claim|visible notes.
"""
import sys
import time

import jwt
import psycopg

host, port, user, dbname, secret_file, tenant, role, subject = sys.argv[1:9]
with open(secret_file, "rb") as f:
    secret = f.read().rstrip(b"\n")
now = int(time.time())
token = jwt.encode(
    {
        "sub": subject,
        "tenant": tenant,
        "role": role,
        "email": f"{subject}@example.com",
        "iat": now,
        "exp": now + 300,
    },
    secret,
    algorithm="HS256",
)
with psycopg.connect(
    host=host, port=port, user=user, dbname=dbname, password=token, sslmode="disable"
) as conn:
    row = conn.execute(
        "SELECT tenant.current_tenant_id(), tenant.current_subject(), "
        "tenant.current_claims()->>'email', (SELECT count(*) FROM notes)"
    ).fetchone()
    print("|".join(str(v) for v in row))
