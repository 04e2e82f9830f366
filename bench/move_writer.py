#!/usr/bin/env python3
"""The moved tenant's writer for bench/move.sh: one INSERT per transaction
through tenant-router (autocommit, psycopg), until the file --stop exists.
Writes one line per transaction to --log ("end_epoch latency_ms ok|error
message") and prints one JSON object: committed, errors, longest_ms.

    move_writer.py --dsn "host=... port=... user=app.tenant ..." --stop F --log L
"""
import argparse
import json
import os
import time

import psycopg


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dsn", required=True)
    p.add_argument("--stop", required=True)
    p.add_argument("--log", required=True)
    a = p.parse_args()
    committed = errors = 0
    longest = 0.0
    with psycopg.connect(a.dsn, autocommit=True) as c, open(a.log, "w") as log:
        while not os.path.exists(a.stop):
            t = time.time()
            try:
                c.execute("INSERT INTO items (body) VALUES ('written')")
                committed += 1
                status = "ok"
            except psycopg.Error as e:
                errors += 1
                status = "error " + str(e).replace("\n", " ")
            ms = (time.time() - t) * 1000
            longest = max(longest, ms)
            log.write(f"{time.time():.6f} {ms:.3f} {status}\n")
    print(json.dumps({"committed": committed, "errors": errors, "longest_ms": round(longest, 1)}))


if __name__ == "__main__":
    main()
