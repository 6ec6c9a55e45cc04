"""A webhook receiver that takes 10 seconds to answer each delivery (bench/ab.sh's *-hooks
modes): sessiond's delivery loop keeps webhooks.concurrency deliveries hanging on it."""

import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Slow(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 10.0)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Slow).serve_forever()
