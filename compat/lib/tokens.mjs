// Better Auth's bearer() and jwt() plugins as the official client meets them, as a library for
// test/tokens.test.mjs and the "tokens" profile of test/profiles.test.mjs.
//
// A BearerDevice holds no cookie jar: it is an app that keeps the `set-auth-token` header it was
// given and sends it back as `Authorization: Bearer …` through the client's own
// `fetchOptions.auth`. Every call records the status, `data`, `error` and the token headers
// (`set-auth-token` by its form, `set-auth-jwt` decoded, `Access-Control-Expose-Headers`), so
// that the outcomes on two servers can be compared as lib/scenario.mjs compares cookie devices.

import assert from "node:assert/strict";
import { createAuthClient } from "better-auth/client";
import { jwtClient } from "better-auth/client/plugins";
import { b64json, cookieForm, norm } from "./client.mjs";

/** A JWT's header and claims, comparable across servers (times, kid and sid by form only). */
export function jwtShape(jwt, baseURL) {
  if (typeof jwt !== "string") return { notAJwt: jwt ?? null };
  const parts = jwt.split(".");
  const header = parts.length === 3 ? b64json(parts[0]) : undefined;
  const payload = parts.length === 3 ? b64json(parts[1]) : undefined;
  if (!header || !payload) return { notAJwt: "<malformed>" };
  const claims = {};
  for (const [k, v] of Object.entries(payload)) {
    if (k === "iat" || k === "exp" || k === "nbf") claims[k] = typeof v === "number" && Number.isInteger(v) ? "<seconds>" : v;
    else if ((k === "iss" || k === "aud") && v === baseURL) claims[k] = "<base URL>";
    else if (k === "sid") claims[k] = typeof v === "string" && /^[0-9a-f]{64}$/.test(v) ? "<hex sha256>" : v;
    else claims[k] = v;
  }
  return {
    header: { ...header, kid: typeof header.kid === "string" && header.kid !== "" ? "<kid>" : header.kid },
    claims,
    // the lifetime, not the times: the servers mint at different instants
    lifetime: typeof payload.exp === "number" && typeof payload.iat === "number" ? payload.exp - payload.iat : null,
    signature: /^[A-Za-z0-9_-]+$/.test(parts[2]) ? "<base64url>" : parts[2],
  };
}

/** A key set's shape: each key's member names and its non-random members. */
export function jwksShape(body) {
  if (!body || !Array.isArray(body.keys)) return { notAKeySet: body ?? null };
  return {
    members: Object.keys(body).sort(),
    keys: body.keys.map((k) => ({
      names: Object.keys(k).sort(),
      kty: k.kty, crv: k.crv, alg: k.alg, use: k.use,
      kid: typeof k.kid === "string" && k.kid !== "" ? "<kid>" : k.kid,
    })),
  };
}

export class BearerDevice {
  /** `token`: what `Authorization: Bearer` carries (null: none); `cookie`: an optional Cookie header. */
  constructor(name, token = null) {
    this.name = name;
    this.token = token;
    this.cookie = null;
    this.last = null;
  }

  client(server) {
    const origin = new URL(server.baseURL).origin;
    const customFetchImpl = async (input, init = {}) => {
      const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
      const headers = new Headers(init.headers);
      headers.set("origin", origin);
      if (this.cookie) headers.set("cookie", this.cookie);
      const res = await fetch(url, { ...init, headers, redirect: "manual" });
      this.last = {
        status: res.status,
        sentAuthorization: headers.get("authorization"),
        setAuthToken: res.headers.get("set-auth-token"),
        setAuthJwt: res.headers.get("set-auth-jwt"),
        expose: res.headers.get("access-control-expose-headers"),
        setCookies: res.headers.getSetCookie(),
      };
      return res;
    };
    const auth = { type: "Bearer", token: () => this.token ?? undefined };
    return createAuthClient({ baseURL: server.baseURL, plugins: [jwtClient()], fetchOptions: { customFetchImpl, auth } });
  }

  /** One client call: { data, error, status, headers } (headers: the last request's token headers). */
  async call(server, fn) {
    this.last = null;
    const res = await fn(this.client(server));
    return { data: res?.data ?? null, error: res?.error ?? null, status: this.last?.status ?? null, headers: this.last };
  }
}

/** The comparable outcome of a BearerDevice call (labels from `roles`, the server's base URL as "<base URL>"). */
export function bearerOutcome(res, roles, baseURL, now = Date.now()) {
  const h = res.headers ?? {};
  const tok = h.setAuthToken;
  return {
    status: res.status,
    data: norm(res.data, roles, now),
    error: res.error ? { status: res.error.status, statusText: res.error.statusText, code: res.error.code ?? null, message: res.error.message ?? null } : null,
    // the signed cookie value; whether it is percent-encoded as the cookie is
    setAuthToken: tok == null ? null : { form: cookieForm(safeDecode(tok), roles, now), percentEncoded: /%/.test(tok) },
    setAuthJwt: h.setAuthJwt == null ? null : norm(jwtShape(h.setAuthJwt, baseURL), roles, now),
    exposeHeaders: h.expose == null ? null : h.expose.split(",").map((s) => s.trim().toLowerCase()).sort(),
    setCookies: (h.setCookies ?? []).map((l) => l.split("=")[0]),
  };
}

function safeDecode(v) {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

/** The signed value a server's set-auth-token carries, as Authorization: Bearer sends it back. */
export const bearerOf = (res) => res.headers?.setAuthToken ?? null;

/** The tokens profile's steps with cookies (test/tokens.test.mjs drives the bearer): /token and /jwks by shape. */
export async function tokenSteps({ step, ok: okRes, err, A, anon, server }) {
  const shaped = (path, shape) => async (c) => {
    const r = await c.$fetch(path, { method: "GET" });
    return { data: r.data ? shape(r.data) : null, error: r.error };
  };
  await step("GET /token (A)", A, shaped("/token", (d) => ({ token: jwtShape(d.token, server.baseURL) })), (res) => {
    okRes(res);
    assert.equal(res.data.token.header.alg, "EdDSA");
  });
  await step("GET /token without cookie → 401", anon, shaped("/token", (d) => d), err(401));
  await step("GET /jwks", anon, shaped("/jwks", jwksShape), (res) => {
    okRes(res);
    assert.equal(res.data.keys.length, 1);
  });
}
