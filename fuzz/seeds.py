#!/usr/bin/env python3
"""Write the seed corpus (fuzz/corpus/<target>/seed-*): valid startup
packets, SSLRequest, GSSENCRequest, CancelRequest, framed messages, SCRAM
client-first/final, JWTs and tenant names. Run from fuzz/; `scripts/fuzz
--minimize` then merges what the runs found into the committed corpus."""
import base64, hashlib, hmac, json, os, struct

SEP = b"\xff"

def startup(params):
    body = struct.pack(">I", 196608)
    for k, v in params:
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack(">I", len(body) + 4) + body

def frame(tag, body):
    return tag + struct.pack(">I", len(body) + 4) + body

def write(target, name, data):
    d = os.path.join("corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)

ssl = struct.pack(">II", 8, 80877103)
gss = struct.pack(">II", 8, 80877104)
cancel = struct.pack(">IIii", 16, 80877102, 4242, -123456789)
psql = startup([("user", "app.acme"), ("database", "db"), ("application_name", "psql"),
                ("client_encoding", "UTF8")])
opts = startup([("user", "app.acme"), ("database", "db"),
                ("options", "-c search_path=a,b --statement-timeout=5s -c x.y=1\\ 2")])
bad = startup([("user", "app.acme"), ("options", "-c role=postgres"), ("replication", "off")])
for name, data in [("ssl", b"\x01" + ssl), ("gss", b"\x01" + gss), ("cancel", b"\x10" + cancel),
                   ("psql", b"\x40" + psql), ("ssl-then-startup", b"\x03" + ssl + psql),
                   ("options", b"\xff" + opts), ("forbidden", b"\x07" + bad),
                   ("v2", b"\x08" + struct.pack(">II", 12, 131072) + b"\0\0\0\0")]:
    write("startup", name, data)

for name, (sel, params, sni) in {
    "user-tenant": (0, [("user", "app.acme"), ("database", "db")], ""),
    "tenant-user": (1, [("user", "acme.app")], ""),
    "db-pattern": (0x12, [("user", "app"), ("database", "acme_db")], ""),
    "sni": (0x40, [("user", "app"), ("database", "db")], "acme.db.example.com"),
    "bypass": (0, [("user", "postgres")], ""),
    "options": (0, [("user", "app.acme"), ("options", "-c work_mem=4MB --Role=x -crole=y")], ""),
    "replication": (0, [("user", "app.acme"), ("replication", "database")], ""),
    "bad-id": (0, [("user", "app.Acme-Corp!"), ("pg_tenant.tenant", "other")], ""),
}.items():
    text = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in params)
    write("tenant", name, bytes([sel]) + text + (SEP + sni.encode() if sni else b""))

q = frame(b"Q", b"select 1\0")
parse = frame(b"P", b"s1\0select $1\0\0\0")
big = frame(b"P", b"s2\0" + b"x" * 70000 + b"\0\0\0")
bind = frame(b"B", b"\0s1\0\0\0\0\0\0\0")
sync = frame(b"S", b"")
ctrl = lambda step, flags, decisions: bytes([step, flags, len(decisions)]) + bytes(decisions)
for name, data in [("query", ctrl(1, 0, []) + q),
                   ("extended", ctrl(7, 0, [0, 1, 2 | 8, 3 | 4]) + parse + bind + sync),
                   ("streamed", ctrl(16, 0x80, [0]) + big + q),
                   ("held", ctrl(64, 0x81, [3 | 16]) + big + sync),
                   ("bad-length", ctrl(3, 0, []) + q + b"X\0\0\0\x02")]:
    write("framer", name, data)

nonce = "rOprNGfwEbeRWgbNEkqO"
for name, data in [
    ("plain", b"\x00" + f"n,,n=,r={nonce}".encode() + SEP + f"c=biws,r={nonce}srv,p={'A'*43}=".encode()),
    ("honest", b"\x80" + f"n,,n=user,r={nonce}".encode()),
    ("honest-plus", b"\x83" + f"p=tls-server-end-point,,n=,r={nonce}".encode()),
    ("y-flag", b"\x01" + f"y,,n=,r={nonce}".encode()),
    ("mechanism", b"\x04" + f"n,,n=,r={nonce}".encode() + SEP + b"SCRAM-SHA-1"),
    ("verifier", b"\x40" + b"SCRAM-SHA-256$4096:c2FsdA==$" + base64.b64encode(bytes(32)) + b":" + base64.b64encode(bytes(32))),
]:
    write("scram", name, data)

def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")

secret = b"fuzz-secret-fuzz-secret-fuzz-secret-0123"
def hs256(header, payload):
    signed = b64u(header) + b"." + b64u(payload)
    return signed + b"." + b64u(hmac.new(secret, signed, hashlib.sha256).digest())
hdr = json.dumps({"alg": "HS256", "typ": "JWT"}).encode()
claims = json.dumps({"tenant": "acme", "sub": "alice", "exp": 1800000060, "email": "a@x"}).encode()
strict = json.dumps({"org": {"tenant": "acme"}, "sub": "bob", "role": "reader", "exp": 1800000060,
                     "iss": "https://issuer.example", "aud": "pg", "nbf": 1799999000}).encode()
for name, data in [("raw-hs256", b"\x00" + hs256(hdr, claims)),
                   ("raw-eddsa", b"\x00" + b64u(b'{"alg":"EdDSA","kid":"k1"}') + b"." + b64u(claims) + b"." + b64u(bytes(64))),
                   ("signed", b"\x02" + hdr + SEP + claims),
                   ("signed-strict", b"\x03" + hdr + SEP + strict),
                   ("claims", b"\x04acme" + SEP + b"alice" + SEP + b"a@x"),
                   ("claims-strict", b"\x0dacme" + SEP + b"bob" + SEP + b"b@y")]:
    write("jwt", name, data)

tok = b"v2.1.9e060dfeab257efe91cc4554a8cdab279786cdf3cf66d4ffeefda5c09b898ab55502f5bf5ba53c4fc27f241388e0f915ae12b48cb8372e0a5450bd72f681a905"
write("context_token", "readme", tok + SEP + b"acme" + SEP + b"alice" + SEP + b'{"role":"x"}')
write("context_token", "keys", b"v2.0.x" + SEP + b"acme" + SEP +
      b"03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8, 03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8" + SEP + b" { } ")
