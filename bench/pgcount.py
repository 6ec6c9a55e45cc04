#!/usr/bin/env python3
"""A counting TCP proxy in front of PostgreSQL, for bench/run.sh.

    pgcount.py LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT STATS_FILE

It forwards bytes unchanged and parses the frontend (client -> server) side of the
protocol (so clients must not use TLS: sslmode=disable). On SIGUSR1 it writes cumulative
counters as JSON to STATS_FILE:

  round_trips   Sync ('S') + simple Query ('Q') messages: each makes the client wait for
                ReadyForQuery, i.e. one network round trip (sqlx and node-pg never pipeline)
  pings         Syncs with no Parse/Bind/Execute since the previous Sync: a pool's
                liveness check (sqlx's test_before_acquire), a round trip with no statement
  statements    Execute ('E') + simple Query ('Q') messages
  parses        Parse ('P') messages (statement preparations)
  texts         statement text -> times seen (from Parse and Query messages)
"""
import asyncio
import json
import signal
import struct
import sys

LISTEN, UP_HOST, UP_PORT, STATS = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
stats = {"connections": 0, "round_trips": 0, "pings": 0, "statements": 0, "parses": 0, "texts": {}}


def dump(*_):
    with open(STATS + ".tmp", "w") as f:
        json.dump(stats, f)
    import os
    os.replace(STATS + ".tmp", STATS)


class Frontend:
    """Incremental parser of client messages."""

    def __init__(self):
        self.buf = b""
        self.startup = True  # untyped messages until the StartupMessage
        self.work_since_sync = False

    def feed(self, data):
        self.buf += data
        while True:
            if self.startup:
                if len(self.buf) < 8:
                    return
                (n,) = struct.unpack("!I", self.buf[:4])
                if len(self.buf) < n:
                    return
                (code,) = struct.unpack("!I", self.buf[4:8])
                self.buf = self.buf[n:]
                if code not in (80877103, 80877104):  # SSLRequest, GSSENCRequest
                    self.startup = False
                continue
            if len(self.buf) < 5:
                return
            t = self.buf[:1]
            (n,) = struct.unpack("!I", self.buf[1:5])
            if len(self.buf) < 1 + n:
                return
            body, self.buf = self.buf[5 : 1 + n], self.buf[1 + n :]
            self.message(t, body)

    def message(self, t, body):
        if t == b"P":
            stats["parses"] += 1
            name_end = body.index(b"\0")
            text = body[name_end + 1 : body.index(b"\0", name_end + 1)].decode("utf-8", "replace")
            key = " ".join(text.split())[:300]
            stats["texts"][key] = stats["texts"].get(key, 0) + 1
            self.work_since_sync = True
        elif t in (b"B", b"E", b"D"):
            if t == b"E":
                stats["statements"] += 1
            self.work_since_sync = True
        elif t == b"S":
            stats["round_trips"] += 1
            if not self.work_since_sync:
                stats["pings"] += 1
            self.work_since_sync = False
        elif t == b"Q":
            stats["round_trips"] += 1
            stats["statements"] += 1
            key = " ".join(body.rstrip(b"\0").decode("utf-8", "replace").split())[:300]
            stats["texts"][key] = stats["texts"].get(key, 0) + 1


async def pipe(reader, writer, parser=None):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if parser:
                parser.feed(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def handle(cr, cw):
    stats["connections"] += 1
    try:
        ur, uw = await asyncio.open_connection(UP_HOST, UP_PORT)
    except OSError:
        cw.close()
        return
    await asyncio.gather(pipe(cr, uw, Frontend()), pipe(ur, cw))


async def main():
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump)
    server = await asyncio.start_server(handle, "127.0.0.1", LISTEN)
    dump()
    async with server:
        await server.serve_forever()


asyncio.run(main())
