// Better Auth's official client (`createAuthClient` from `better-auth/client`) in Node, with a
// cookie jar per "device", and the normalisation used to compare what two servers answered.
//
// A Device is one browser profile: a cookie jar keyed by cookie name. Cookies set by servers on
// 127.0.0.1 are shared by every port of that host, as a browser shares them, so one Device can
// talk to Better Auth and to sessiond in turn (sidecar mode). Each request sends an Origin equal
// to the base URL of the server it goes to, as a page served from that origin would.

import { createAuthClient } from "better-auth/client";

/** The cookie of each kind, by name: Better Auth's defaults, or a profile's `advanced.cookies`. */
export const DEFAULT_COOKIE_NAMES = {
  session_token: "better-auth.session_token",
  session_data: "better-auth.session_data",
  dont_remember: "better-auth.dont_remember",
};

/** The cookie names of the options' `advanced.cookies` (lib/harness.mjs's vocabulary; over http: no `__Secure-`). */
export function cookieNames(options = {}) {
  const names = { ...DEFAULT_COOKIE_NAMES };
  for (const kind of Object.keys(names)) {
    const name = options.cookies?.[kind]?.name;
    if (name) names[kind] = name;
  }
  return names;
}

export class Device {
  constructor(name, cookieNames = DEFAULT_COOKIE_NAMES) {
    this.name = name;
    this.cookieNames = cookieNames;
    this.cookies = new Map(); // name -> raw (percent-encoded) value
    this.log = []; // { method, url, status, setCookies }
    this.plugins = []; // client plugins (e.g. adminClient(), multiSessionClient())
  }

  cookieHeader() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
  }

  apply(lines) {
    for (const line of lines) {
      const c = parseSetCookie(line);
      const maxAge = c.attrs.find((a) => a.name.toLowerCase() === "max-age");
      if (c.rawValue === "" || (maxAge && Number(maxAge.value) <= 0)) this.cookies.delete(c.name);
      else this.cookies.set(c.name, c.rawValue);
    }
  }

  /** The cookie of a kind (`session_token`, `session_data`, `dont_remember`; a cache's first chunk). */
  cookie(kind) {
    const name = this.cookieNames[kind];
    if (!name) throw new Error(`unknown cookie kind ${kind}`);
    for (const n of [name, `${name}.0`]) {
      const v = this.cookies.get(n);
      if (v !== undefined) return { name: n, raw: v, value: decode(v) };
    }
    return null;
  }

  /** The raw session token from the signed session_token cookie. */
  token() {
    const c = this.cookie("session_token");
    if (!c) return null;
    const dot = c.value.lastIndexOf(".");
    return dot > 0 ? c.value.slice(0, dot) : c.value;
  }

  /** A copy of this jar (another tab that kept the old cookies). */
  clone(name = `${this.name}'`) {
    const d = new Device(name, this.cookieNames);
    d.cookies = new Map(this.cookies);
    d.plugins = this.plugins;
    return d;
  }

  /** Keeps only the cookies whose names end with one of the suffixes. */
  keepOnly(...suffixes) {
    for (const k of [...this.cookies.keys()]) if (!suffixes.some((s) => k.endsWith(s))) this.cookies.delete(k);
    return this;
  }

  /** The official client for this device against one server. */
  client(server) {
    const origin = new URL(server.baseURL).origin;
    const customFetchImpl = async (input, init = {}) => {
      const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
      const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
      headers.set("origin", origin);
      const ck = this.cookieHeader();
      if (ck) headers.set("cookie", ck);
      else headers.delete("cookie");
      const res = await fetch(input instanceof Request ? input : url, { ...init, headers, redirect: "manual" });
      const setCookies = res.headers.getSetCookie();
      this.apply(setCookies);
      this.log.push({ method: init.method ?? "GET", url, status: res.status, setCookies });
      return res;
    };
    return createAuthClient({ baseURL: server.baseURL, plugins: this.plugins, fetchOptions: { customFetchImpl } });
  }

  /**
   * Runs one client call against a server; returns { data, error, setCookies, status } where
   * setCookies are the Set-Cookie lines of the requests the call made.
   */
  async call(server, fn) {
    const from = this.log.length;
    const res = await fn(this.client(server));
    const entries = this.log.slice(from);
    return {
      data: res?.data ?? null,
      error: res?.error ?? null,
      status: entries.length ? entries[entries.length - 1].status : null,
      setCookies: entries.flatMap((e) => e.setCookies),
      requests: entries.length,
    };
  }
}

function decode(v) {
  try { return decodeURIComponent(v); } catch { return v; }
}

export function parseSetCookie(line) {
  const parts = line.split(";").map((p) => p.trim());
  const [nv, ...rest] = parts;
  const eq = nv.indexOf("=");
  const name = eq < 0 ? nv : nv.slice(0, eq);
  const rawValue = eq < 0 ? "" : nv.slice(eq + 1);
  const attrs = rest.filter(Boolean).map((a) => {
    const i = a.indexOf("=");
    return i < 0 ? { name: a, value: null } : { name: a.slice(0, i), value: a.slice(i + 1) };
  });
  return { name, rawValue, value: decode(rawValue), attrs };
}

// ---------------------------------------------------------------------------------------------
// Normalisation: random values become labels, dates become labels relative to now, so that the
// outcomes of the same scenario on two servers can be compared with deepStrictEqual.
// ---------------------------------------------------------------------------------------------

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;
const RANDOM32 = /^[A-Za-z0-9]{32}$/;
// ids under advanced.database.generateId = "uuid"
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SIG = /^[A-Za-z0-9+/]{43}=$/;

/** Labels for the random values of one server's run: the same label on both sides. */
export class Roles {
  constructor() {
    this.map = new Map();
  }

  add(value, label) {
    if (typeof value === "string" && value !== "" && !this.map.has(value)) this.map.set(value, label);
  }
}

export function dateLabel(s, now = Date.now()) {
  const t = typeof s === "number" ? s : Date.parse(s);
  if (Number.isNaN(t)) return `<bad-date ${s}>`;
  const d = (t - now) / 1000;
  const near = (x) => Math.abs(d - x) < 60;
  const rel = near(0) ? "now" : near(300) ? "now+5m" : near(3600) ? "now+1h" : near(86400) ? "now+1d"
    : near(604800) ? "now+7d" : d < 0 ? "past" : "future";
  const form = typeof s === "number" ? "epoch" : /\.\d{3}Z$/.test(s) ? "date" : `date(not ISO-ms: ${s})`;
  return `<${form}:${rel}>`;
}

function normString(s, roles, now) {
  if (roles.map.has(s)) return roles.map.get(s);
  if (ISO.test(s)) return dateLabel(s, now);
  if (RANDOM32.test(s)) return "<random32>";
  if (UUID.test(s)) return "<uuid>";
  return s;
}

/** Normalises a JSON value: keys sorted, random values labelled, arrays sorted. */
export function norm(v, roles, now = Date.now()) {
  if (typeof v === "string") return normString(v, roles, now);
  if (v instanceof Date) return dateLabel(v.toISOString(), now);
  if (v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) {
    return v.map((x) => norm(x, roles, now)).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
  }
  const o = {};
  for (const k of Object.keys(v).sort()) o[k] = norm(v[k], roles, now);
  return o;
}

/** A base64url JSON object, or undefined. */
export function b64json(s) {
  if (!/^[A-Za-z0-9_-]+={0,2}$/.test(s)) return undefined;
  try {
    const v = JSON.parse(Buffer.from(s, "base64url").toString("utf8"));
    return v !== null && typeof v === "object" ? v : undefined;
  } catch {
    return undefined;
  }
}

function normPayload(v, roles, now) {
  if (typeof v === "number" && v > 1e9 && v < 1e14) return dateLabel(v > 1e12 ? v : v * 1000, now);
  if (typeof v === "string" && /^[A-Za-z0-9_-]{43}$/.test(v)) return "<sig43>";
  if (v === null || typeof v !== "object") return norm(v, roles, now);
  if (Array.isArray(v)) return v.map((x) => normPayload(x, roles, now));
  const o = {};
  for (const k of Object.keys(v).sort()) o[k] = normPayload(v[k], roles, now);
  return o;
}

/** A cookie value by its form: signed token, signed flag, cookie-cache payload (decoded). */
export function cookieForm(value, roles, now = Date.now()) {
  if (value === "") return "";
  const dot = value.lastIndexOf(".");
  if (dot > 0 && SIG.test(value.slice(dot + 1))) return `${normString(value.slice(0, dot), roles, now)}.<sig>`;
  const parts = value.split(".");
  if (parts.length === 3 && b64json(parts[0])?.alg) {
    const h = b64json(parts[0]);
    if (typeof h.kid === "string") h.kid = "<kid>";
    return { jwt: { header: h, payload: normPayload(b64json(parts[1]) ?? {}, roles, now) } };
  }
  if (parts.length === 5 && b64json(parts[0])?.enc) {
    const h = b64json(parts[0]);
    if (typeof h.kid === "string") h.kid = "<kid>";
    return { jwe: { header: h } };
  }
  const j = b64json(value);
  if (j) return { compact: normPayload(j, roles, now) };
  return "<opaque>";
}

/** A Set-Cookie line: name, value form, attributes in order (names case-insensitively). */
export function normSetCookie(line, roles, now = Date.now()) {
  const c = parseSetCookie(line);
  return {
    name: c.name,
    value: cookieForm(c.value, roles, now),
    attrs: c.attrs.map((a) => (a.value === null ? a.name.toLowerCase() : `${a.name.toLowerCase()}=${a.name.toLowerCase() === "expires" ? "<date>" : a.value}`)),
  };
}

/** The comparable outcome of one client call. */
export function outcome(res, roles, now = Date.now()) {
  const o = {
    status: res.status,
    data: norm(res.data, roles, now),
    error: res.error ? { status: res.error.status, statusText: res.error.statusText, code: res.error.code ?? null, message: res.error.message ?? null } : null,
    setCookies: res.setCookies.map((l) => normSetCookie(l, roles, now)),
  };
  return o;
}
