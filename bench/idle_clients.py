"""Open N idle, authenticated client connections and hold them.

    python3 bench/idle_clients.py CONNINFO N READY_FILE

Connects N times with psycopg 3 (the password from PGPASSWORD), at most 50
handshakes at a time; each connection is open once psycopg returns (after
ReadyForQuery). Then writes "<opened> <failed> <first error>" to READY_FILE
and sleeps, holding every connection idle, until SIGTERM or SIGINT.
Used by bench/pool.sh to measure a proxy's memory per idle client.
"""
import asyncio
import signal
import sys

import psycopg


async def main(conninfo: str, n: int, ready: str) -> None:
    gate = asyncio.Semaphore(50)
    errors: list[str] = []

    async def one():
        async with gate:
            try:
                return await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
            except Exception as e:  # counted and reported, not raised
                errors.append(str(e).strip().splitlines()[0] if str(e).strip() else repr(e))
                return None

    conns = [c for c in await asyncio.gather(*(one() for _ in range(n))) if c is not None]
    with open(ready + ".tmp", "w") as f:
        f.write(f"{len(conns)} {len(errors)} {errors[0] if errors else ''}\n")
    import os
    os.replace(ready + ".tmp", ready)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for c in conns:
        await c.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
