#!/usr/bin/env python3
"""An upstream service that trusts sessiond's JWTs, not plain identity headers.

It verifies the JWT of each request (``X-Auth-Jwt``, as sessiond's forward auth hands it to the
proxy, or ``Authorization: Bearer <JWT>``) with sessiond's published key set, follows sessiond's
revocation feed, and refuses a JWT whose session (``sid``) was revoked. It answers 200 with the
claims as JSON, or 401 ``{"code", "message"}``.

Configuration (environment):

  SESSIOND_URL        where sessiond answers (its key set and feed), e.g. http://127.0.0.1:3000
  SESSIOND_BASE_PATH  the API's path (/api/auth)
  JWT_ISSUER          the ``iss`` to require (SESSIOND_URL: sessiond's base_url, its default
                      issuer; set it when sessiond is reached at another address, e.g. one
                      replica of several behind a public URL)
  JWT_AUDIENCE        the ``aud`` to require (JWT_ISSUER, sessiond's default audience)
  REVOCATION_KEY      sessiond's ``revocation_feed.key`` (empty: the feed is open)
  LISTEN              host:port to serve on (127.0.0.1:9000)
  POLL_INTERVAL       seconds between polls of the feed (0.3)
  FEED_STALE_AFTER    seconds without a successful poll after which every JWT that carries a
                      ``sid`` is refused, since a revocation could be missed (5)

Keys are cached; an unknown ``kid`` refetches the key set at most once per 30 s, so that a
stranger sending made-up kids cannot make this service hammer sessiond. Caps: a JWT longer than
8 KiB is refused unread; at most 100,000 revoked sids are remembered, each for 24 h (longer than
any token sessiond mints lives).

Needs PyJWT with its crypto extra (``pip install -r requirements.txt``): EdDSA, ES256, ES512,
RS256 and PS256 keys.
"""

import json
import logging
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt

LOG = logging.getLogger("jwt-verifier")

MAX_JWT_BYTES = 8192
MAX_REVOKED = 100_000
REVOKED_TTL = 24 * 3600
JWKS_REFETCH_EVERY = 30.0
ALGORITHMS = ["EdDSA", "ES256", "ES512", "RS256", "PS256"]


def env(name, default):
    value = os.environ.get(name, "")
    return value if value else default


class KeySet:
    """sessiond's public keys by kid; refetched on an unknown kid at most once per 30 s."""

    def __init__(self, url):
        self.url = url
        self.keys = {}
        self.fetched_at = None
        self.lock = threading.Lock()

    def _fetch(self):
        with urllib.request.urlopen(self.url, timeout=5) as res:
            body = json.load(res)
        keys = {}
        for k in body.get("keys", []):
            try:
                keys[k["kid"]] = jwt.PyJWK(k)
            except (KeyError, jwt.exceptions.PyJWKError) as e:
                LOG.warning("key set: skipping a key (%s)", e)
        self.keys = keys
        LOG.info("key set: %d key(s)", len(keys))

    def get(self, kid):
        with self.lock:
            key = self.keys.get(kid)
            if key is not None:
                return key
            now = time.monotonic()
            if self.fetched_at is None or now - self.fetched_at >= JWKS_REFETCH_EVERY:
                self.fetched_at = now
                try:
                    self._fetch()
                except (OSError, ValueError) as e:
                    LOG.warning("key set: fetch failed (%s)", e)
            return self.keys.get(kid)


class Revocations:
    """The sids the feed named, polled every POLL_INTERVAL seconds."""

    def __init__(self, url, key, interval, stale_after):
        self.url = url
        self.key = key
        self.interval = interval
        self.stale_after = stale_after
        self.revoked = {}  # sid -> when it was learnt (monotonic)
        self.cursor = None
        self.last_ok = None
        self.pruned_at = 0.0
        self.lock = threading.Lock()

    def is_revoked(self, sid):
        with self.lock:
            return sid in self.revoked

    def fresh(self):
        with self.lock:
            return self.last_ok is not None and time.monotonic() - self.last_ok < self.stale_after

    def poll_once(self):
        url = self.url
        if self.cursor is not None:
            url += "?" + urllib.parse.urlencode({"since": self.cursor})
        req = urllib.request.Request(url)
        if self.key:
            req.add_header("Authorization", "Bearer " + self.key)
        with urllib.request.urlopen(req, timeout=5) as res:
            body = json.load(res)
        now = time.monotonic()
        with self.lock:
            # the feed repeats the last seconds after a cursor: a dict dedupes by sid
            for entry in body.get("revoked", []):
                sid = entry.get("sid")
                if isinstance(sid, str):
                    self.revoked.setdefault(sid, now)
            self._prune(now)
            self.cursor = body.get("cursor", self.cursor)
            self.last_ok = now
        if body.get("complete") is False:
            LOG.warning("revocation feed: incomplete answer (sessions may have ended unseen)")

    def _prune(self, now):
        # at most once a minute, unless over the cap
        if now - self.pruned_at < 60 and len(self.revoked) <= MAX_REVOKED:
            return
        self.pruned_at = now
        old = [s for s, t in self.revoked.items() if now - t > REVOKED_TTL]
        for s in old:
            del self.revoked[s]
        # over the cap: forget the oldest (their tokens have long expired)
        while len(self.revoked) > MAX_REVOKED:
            del self.revoked[next(iter(self.revoked))]

    def run(self):
        while True:
            try:
                self.poll_once()
            except (OSError, ValueError) as e:
                LOG.warning("revocation feed: poll failed (%s)", e)
            time.sleep(self.interval)


class Verifier:
    def __init__(self, keys, revocations, issuer, audience):
        self.keys = keys
        self.revocations = revocations
        self.issuer = issuer
        self.audience = audience

    def verify(self, token):
        """The claims of a valid, unrevoked JWT; raises ValueError with the reason."""
        if len(token) > MAX_JWT_BYTES:
            raise ValueError("token too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.exceptions.DecodeError as e:
            raise ValueError("malformed token") from e
        key = self.keys.get(header.get("kid"))
        if key is None:
            raise ValueError("unknown key")
        alg = key.algorithm_name
        if alg not in ALGORITHMS or header.get("alg") != alg:
            raise ValueError("algorithm mismatch")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.exceptions.InvalidTokenError as e:
            raise ValueError(str(e)) from e
        sid = claims.get("sid")
        if sid is not None:
            # a sid can only be checked against a feed that is being followed
            if not self.revocations.fresh():
                raise ValueError("revocation feed unavailable")
            if self.revocations.is_revoked(sid):
                raise ValueError("session revoked")
        return claims


def token_of(headers):
    jwt_header = headers.get("X-Auth-Jwt")
    if jwt_header:
        return jwt_header.strip()
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return None


def make_handler(verifier):
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def _handle(self):
            token = token_of(self.headers)
            if not token:
                return self._answer(401, {"code": "UNAUTHORIZED", "message": "no JWT"})
            try:
                claims = verifier.verify(token)
            except ValueError as e:
                return self._answer(401, {"code": "UNAUTHORIZED", "message": str(e)})
            return self._answer(200, {"claims": claims})

        do_GET = _handle
        do_POST = _handle
        do_PUT = _handle
        do_DELETE = _handle
        do_PATCH = _handle

        def log_message(self, fmt, *args):
            # no tokens in logs: only the request line's path, without its query
            LOG.debug("%s %s", self.command, self.path.split("?", 1)[0])

    return Handler


def main():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    base = env("SESSIOND_URL", "http://127.0.0.1:3000").rstrip("/")
    base_path = env("SESSIOND_BASE_PATH", "/api/auth").rstrip("/")
    issuer = env("JWT_ISSUER", base)
    audience = env("JWT_AUDIENCE", issuer)
    host, _, port = env("LISTEN", "127.0.0.1:9000").rpartition(":")
    keys = KeySet(base + base_path + "/jwks")
    revocations = Revocations(
        base + base_path + "/revocations",
        os.environ.get("REVOCATION_KEY", ""),
        float(env("POLL_INTERVAL", "0.3")),
        float(env("FEED_STALE_AFTER", "5")),
    )
    threading.Thread(target=revocations.run, daemon=True).start()
    server = ThreadingHTTPServer((host, int(port)), make_handler(Verifier(keys, revocations, issuer, audience)))
    LOG.info("listening on %s:%s", host, port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
