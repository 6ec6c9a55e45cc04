#!/usr/bin/env python3
"""Writes each fuzz target's seed corpus into fuzz/corpus/<target>/ from the values the real
Better Auth produced (tests/vectors/better-auth-1.7.json) and a few hand-made inputs: the
fuzzer then mutates valid cookies, signed values, cache values and bodies, not just noise."""
import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
vectors = json.load(open(os.path.join(ROOT, "tests/vectors/better-auth-1.7.json")))


def strings(o):
    """Every string in the vectors, with the key that holds it."""
    if isinstance(o, dict):
        for k, v in o.items():
            if isinstance(v, str):
                yield k, v
            else:
                yield from strings(v)
    elif isinstance(o, list):
        for v in o:
            if isinstance(v, str):
                yield "", v
            else:
                yield from strings(v)


seeds = {t: set() for t in [
    "cookie_header", "signed_cookie", "cache_compact", "cache_jwt", "cache_jwe",
    "request_bodies", "config_loader"]}
for key, s in strings(vectors):
    if key in ("cookie", "cookie_header"):
        seeds["cookie_header"].add(s)
    if key in ("value_decoded", "value_on_wire", "result"):
        seeds["signed_cookie"].add(s)
    if key == "session_data_value" or s.startswith("better-auth.session_data="):
        value = s.split(";")[0].split("=", 1)[-1]
        if value.startswith("eyJhbGciOiJIUzI1NiJ9"):
            seeds["cache_jwt"].add(value)
        elif value.startswith("eyJhbGciOiJkaXIi"):
            seeds["cache_jwe"].add(value)
        else:
            seeds["cache_compact"].add(value)
for strategy in ("compact", "jwt", "jwe"):
    v = vectors.get("cookie_cache", {}).get(strategy, {}).get("session_data_value")
    if v:
        seeds[f"cache_{strategy}"].add(v)
chunked = "; ".join(f"better-auth.session_data.{i}=x{i}" for i in range(10))
seeds["cookie_header"] |= {chunked, 'a=1; a=2; b="q%20v"; c=%ZZ; =x; ;;'}

routes = ["/sign-up/email", "/sign-in/email", "/sign-out", "/revoke-session",
          "/update-session", "/update-user", "/change-password", "/get-session"]
bodies = [
    b'{"name":"Ada","email":"ada@example.com","password":"correct-horse-battery"}',
    b'{"email":"ada@example.com","password":"x","rememberMe":false,"callbackURL":"/d"}',
    b'{"token":"Tk7fJ2hL9mNpQ4rS6tVwX8yZ1aBcD3eF"}', b'{"id":"abc"}',
    b'{"name":"Z","image":null,"theme":5}',
    b'{"currentPassword":"a","newPassword":"b","revokeOtherSessions":true}',
    b'name=Ada&email=ada%40example.com&password=pw', b'null', b'[1]', b'{"a":{"b":[]}}',
]
for r in range(len(routes)):
    for ct in range(6):
        for b in bodies:
            seeds["request_bodies"].add(bytes([r, ct]) + b)

toml = open(os.path.join(ROOT, "config/default.toml"), "rb").read()
seeds["config_loader"] |= {
    toml,
    b'secret = "x"\n[session]\nexpires_in = 60\n\0SESSIOND_TRUSTED_ORIGINS=["https://*.example.com"]\nPORT=1',
    b'\0BETTER_AUTH_URL=http://a.example\nSESSIOND_SESSION__COOKIE_CACHE__VERSION=2',
    b'secrets = [{ version = 1, value = "a" }]\n\0BETTER_AUTH_SECRETS= 2:new , 1:old\n'
    b'SESSIOND_SECRETS=[{"version":3,"value":"x"}]',
}

for target, items in seeds.items():
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for item in items:
        data = item if isinstance(item, bytes) else item.encode()
        with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
            f.write(data)
    print(f"{target}: {len(items)} seeds", file=sys.stderr)
