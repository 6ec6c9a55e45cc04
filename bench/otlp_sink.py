"""A local OTLP/HTTP sink for benchmarks: answers 200 to every POST /v1/traces and counts
the exports and bytes received (printed on SIGTERM). Usage: python3 bench/otlp_sink.py PORT"""
import http.server
import signal
import sys

posts = 0
received = 0


class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        global posts, received
        n = int(self.headers.get("content-length", 0))
        self.rfile.read(n)
        posts += 1
        received += n
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def stop(*_):
    print(f"exports {posts} bytes {received}", flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
