#!/usr/bin/env python3
"""A one-node Redis Cluster that misbehaves on demand, in front of a standalone Redis.

    fake_cluster_node.py PORT BACKEND_PORT MODE_FILE

It claims every slot for itself and relays commands to the standalone Redis. The first
word of MODE_FILE, read before each command, says how to misbehave:
  normal      relay
  stallcmd    read a keyed command and never answer it on that connection
  slots_huge  answer keyed commands with MOVED (a topology refresh) and CLUSTER SLOTS with
              an endless reply
"""
import socket
import sys
import threading
import time

PORT, BACKEND, MODE_FILE = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
NODE_ID = b"a" * 40
KEYED = {b"GET", b"SET", b"DEL", b"EVAL", b"EVALSHA", b"MGET", b"EXISTS", b"INCR", b"EXPIRE",
         b"PEXPIRE", b"TTL", b"PTTL", b"SETEX", b"GETDEL", b"INCRBY", b"SCRIPT"}


def mode():
    try:
        with open(MODE_FILE) as f:
            return (f.read().split() or ["normal"])[0]
    except FileNotFoundError:
        return "normal"


class Reader:
    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        i = self.buf.index(b"\r\n")
        out, self.buf = self.buf[:i], self.buf[i + 2:]
        return out

    def take(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def reply(self):
        head = self.line()
        out, kind = head + b"\r\n", head[:1]
        if kind in b"$=!":
            n = int(head[1:])
            if n >= 0:
                out += self.take(n + 2)
        elif kind in b"*>~%|":
            n = int(head[1:]) * (2 if kind in b"%|" else 1)
            for _ in range(max(n, 0)):
                out += self.reply()
        return out

    def command(self):
        head = self.line()
        if head[:1] != b"*":
            return head.split()
        return [self.take(int(self.line()[1:]) + 2)[:-2] for _ in range(int(head[1:]))]


def bulk(x):
    return b"$%d\r\n%s\r\n" % (len(x), x)


def cluster(client, sub, backend, breader):
    if sub == b"SLOTS":
        if mode() == "slots_huge":
            client.sendall(b"*50000000\r\n")
            entry = b"*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:1\r\n" * 2000
            while True:
                client.sendall(entry)
                time.sleep(0.005)
        client.sendall(b"*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n" + bulk(b"127.0.0.1")
                       + b":%d\r\n" % PORT + bulk(NODE_ID))
    elif sub == b"MYID":
        client.sendall(bulk(NODE_ID))
    elif sub == b"NODES":
        client.sendall(bulk(b"%s 127.0.0.1:%d@1%d myself,master - 0 0 1 connected 0-16383\n"
                            % (NODE_ID, PORT, PORT)))
    elif sub == b"KEYSLOT":
        client.sendall(b":0\r\n")
    else:
        client.sendall(b"-ERR unknown subcommand\r\n")


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass


def serve(client):
    backend = socket.create_connection(("127.0.0.1", BACKEND))
    reader, breader = Reader(client), Reader(backend)
    try:
        while True:
            cmd = reader.command()
            name = cmd[0].upper() if cmd else b""
            m = mode()
            if name == b"CLUSTER":
                cluster(client, cmd[1].upper(), backend, breader)
                continue
            if name in (b"READONLY", b"ASKING", b"READWRITE"):
                client.sendall(b"+OK\r\n")
                continue
            if name in KEYED and m == "slots_huge":
                client.sendall(b"-MOVED 1234 127.0.0.1:%d\r\n" % PORT)
                continue
            if name in KEYED and m == "stallcmd":
                time.sleep(3600)
            backend.sendall(b"*%d\r\n" % len(cmd) + b"".join(bulk(x) for x in cmd))
            if name in (b"SUBSCRIBE", b"PSUBSCRIBE", b"SSUBSCRIBE"):
                # From here on a plain pipe both ways.
                if reader.buf:
                    backend.sendall(reader.buf)
                if breader.buf:
                    client.sendall(breader.buf)
                threading.Thread(target=pump, args=(backend, client), daemon=True).start()
                pump(client, backend)
                return
            client.sendall(breader.reply())
    except (EOFError, OSError):
        pass
    finally:
        for s in (client, backend):
            try:
                s.close()
            except OSError:
                pass


listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", PORT))
listener.listen(512)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
