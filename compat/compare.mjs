#!/usr/bin/env node
// Side-by-side wire comparison: drives the same scenarios against the real Better Auth
// (the reference) and against sessiond, and reports every difference in status codes,
// reason phrases, JSON body shape (keys, value types, fixed values; random values are
// normalised), error codes and messages, selected headers, and Set-Cookie lines (names,
// attributes, Max-Age; values normalised).
//
//   node compat/compare.mjs --ref http://127.0.0.1:4000 --target http://127.0.0.1:4100
//
// Node 20+, no dependencies. See compat/README.md for how to start both servers.

import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import path from "node:path";
import http from "node:http";
import https from "node:https";
import { b64json } from "./lib/client.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

const USAGE = `usage: node compat/compare.mjs --ref URL --target URL [options]
       node compat/compare.mjs REF_URL TARGET_URL [options]

  --ref URL             base URL of the Better Auth reference (e.g. http://127.0.0.1:4000)
  --target URL          base URL of sessiond (e.g. http://127.0.0.1:4100)
  --base-path PATH      API base path on both servers (default /api/auth)
  --ref-origin ORIGIN   Origin header sent to the reference (default: origin of --ref)
  --target-origin ORIG  Origin header sent to sessiond (default: origin of --target)
  --ref-label NAME      column label for the reference (default "ref")
  --target-label NAME   column label for sessiond (default "sessiond")
  --no-session-fields   skip scenarios that need session.additionalFields {theme: string}
  --expected FILE       JSON list of accepted differences (default compat/expected-differences.json);
                        repeat it to merge several lists (the default is then not read unless named)
  --only REGEX          run all scenarios, but compare/report only those whose name matches
  --json FILE           also write every exchange and difference as JSON to FILE
  --ignore-key-order    do not compare the order of keys in JSON objects
  --raw                 in the difference list, also print raw (un-normalised) responses
  --timeout MS          per-request timeout (default 15000)
  --age SECONDS         also run "aged session" scenarios: sessions made at the start are used
                        again after SECONDS (run both servers with update_age / fresh_age below it)
  --sequential          run the scenarios against the reference first, then against the target
                        (default: both at once)

Exit status: 0 no unexpected difference, 1 unexpected differences, 2 usage or connection error.`;

function parseArgs(argv) {
  const o = {
    ref: null, target: null, basePath: "/api/auth", refOrigin: null, targetOrigin: null,
    refLabel: "ref", targetLabel: "sessiond", sessionFields: true,
    expected: [], only: null, json: null, raw: false,
    timeout: 15000, age: 0, keyOrder: true, sequential: false,
  };
  const pos = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) die(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case "--ref": o.ref = val(); break;
      case "--target": case "--sessiond": o.target = val(); break;
      case "--base-path": o.basePath = val(); break;
      case "--ref-origin": o.refOrigin = val(); break;
      case "--target-origin": o.targetOrigin = val(); break;
      case "--ref-label": o.refLabel = val(); break;
      case "--target-label": o.targetLabel = val(); break;
      case "--no-session-fields": o.sessionFields = false; break;
      case "--expected": o.expected.push(val()); break;
      case "--only": o.only = new RegExp(val()); break;
      case "--json": o.json = val(); break;
      case "--raw": o.raw = true; break;
      case "--ignore-key-order": o.keyOrder = false; break;
      case "--sequential": o.sequential = true; break;
      case "--timeout": o.timeout = Number(val()); break;
      case "--age": o.age = Number(val()); if (!(o.age >= 0)) die("--age needs a number of seconds"); break;
      case "-h": case "--help": console.log(USAGE); process.exit(0);
      default:
        if (a.startsWith("-")) die(`unknown option ${a}`);
        pos.push(a);
    }
  }
  if (!o.ref && pos.length) o.ref = pos.shift();
  if (!o.target && pos.length) o.target = pos.shift();
  if (pos.length) die(`unexpected argument ${pos[0]}`);
  if (!o.ref || !o.target) die("both --ref and --target are required");
  for (const k of ["ref", "target"]) {
    try { o[k] = new URL(o[k]).href.replace(/\/$/, ""); } catch { die(`--${k}: not a URL: ${o[k]}`); }
  }
  if (!o.expected.length) o.expected.push(path.join(HERE, "expected-differences.json"));
  o.refOrigin ??= new URL(o.ref).origin;
  o.targetOrigin ??= new URL(o.target).origin;
  o.basePath = "/" + o.basePath.replace(/^\/+|\/+$/g, "");
  return o;
}

function die(msg) {
  console.error(`compare: ${msg}\n\n${USAGE}`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// A client with named cookie jars
// ---------------------------------------------------------------------------------------------

const UA = "sessiond-compat/1";
const UNTRUSTED_ORIGIN = "http://untrusted.example";

/**
 * One HTTP/1.1 exchange with node:http, so that exactly the headers given are sent (fetch adds
 * Sec-Fetch-Mode and others, which change Better Auth's CSRF decisions) and the reason phrase
 * and every Set-Cookie line are seen as sent.
 */
function httpRequest(url, { method, headers, body, timeout }) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === "https:" ? https : http;
    const req = mod.request(u, { method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({
        status: res.statusCode, statusText: res.statusMessage, headers: res.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      }));
      res.on("error", reject);
    });
    req.setTimeout(timeout, () => req.destroy(new Error(`timeout after ${timeout} ms`)));
    req.on("error", reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

class Client {
  constructor(label, baseUrl, basePath, origin, timeout) {
    this.label = label;
    this.base = baseUrl;
    this.api = baseUrl + basePath;
    this.origin = origin;
    this.timeout = timeout;
    this.jars = new Map(); // jar name -> Map(cookie name -> value)
    this.roles = new Map(); // exact random value -> stable label, e.g. token of jar B -> <token:B>
    this.results = new Map(); // scenario name -> exchange
    this.order = [];
  }

  jar(name) {
    if (!this.jars.has(name)) this.jars.set(name, new Map());
    return this.jars.get(name);
  }

  /** The Cookie header a jar would send now. */
  cookieHeader(name) {
    const j = this.jar(name);
    return [...j].map(([k, v]) => `${k}=${v}`).join("; ");
  }

  role(value, label) {
    if (typeof value === "string" && value !== "" && !this.roles.has(value)) this.roles.set(value, label);
  }

  /** Registers a raw session token and, from the jar, its signed cookie form. */
  roleToken(token, who) {
    this.role(token, `<token:${who}>`);
  }

  /**
   * Runs one request.
   * spec: { method='POST', path, query, jar, save=true, cookie (explicit Cookie header, overrides jar),
   *         body (object -> JSON), raw (string|Buffer, sent as is), contentType (undefined: JSON
   *         when body/raw given; null: none), origin ('own' default | null | string),
   *         referer, headers }
   */
  async step(name, spec) {
    if (this.results.has(name)) throw new Error(`duplicate scenario name: ${name}`);
    const method = spec.method ?? (spec.body !== undefined || spec.raw !== undefined ? "POST" : "GET");
    const url = this.api + spec.path + (spec.query ? `?${spec.query}` : "");
    const headers = { "user-agent": UA };
    const origin = spec.origin === undefined ? "own" : spec.origin;
    if (origin === "own") headers.origin = this.origin;
    else if (origin !== null) headers.origin = origin;
    if (spec.referer === "own") headers.referer = this.origin + "/some/page";
    else if (spec.referer) headers.referer = spec.referer;
    let body;
    if (spec.body !== undefined) {
      body = Buffer.from(JSON.stringify(spec.body));
      if (spec.contentType !== null) headers["content-type"] = spec.contentType ?? "application/json";
    } else if (spec.raw !== undefined) {
      body = Buffer.from(spec.raw);
      if (spec.contentType !== null) headers["content-type"] = spec.contentType ?? "application/json";
    }
    if (body !== undefined) headers["content-length"] = String(body.length);
    let cookie = spec.cookie;
    if (cookie === undefined && spec.jar) cookie = this.cookieHeader(spec.jar);
    if (cookie) headers.cookie = cookie;
    Object.assign(headers, spec.headers ?? {});

    const ex = {
      name,
      request: { method, path: spec.path + (spec.query ? `?${spec.query}` : ""), jar: spec.jar ?? null,
        headers: { ...headers }, body: body === undefined ? null : body.toString() },
    };
    const sentAt = Date.now();
    try {
      const res = await httpRequest(url, { method, headers, body, timeout: this.timeout });
      const text = res.body;
      let json;
      let jsonOk = false;
      if (text !== "") {
        try { json = JSON.parse(text); jsonOk = true; } catch { /* not JSON */ }
      }
      const { "set-cookie": setCookie, ...rest } = res.headers;
      ex.response = {
        status: res.status, statusText: res.statusText, headers: rest,
        setCookies: setCookie ?? [], text, json: jsonOk ? json : undefined, jsonOk,
      };
    } catch (e) {
      ex.response = { error: String(e?.message ?? e) };
    }
    ex.at = sentAt;
    if (ex.response.setCookies && spec.jar && spec.save !== false) this.applyCookies(spec.jar, ex.response.setCookies);
    this.results.set(name, ex);
    this.order.push(name);
    return { ...ex.response, json: ex.response.json, ex };
  }

  applyCookies(jarName, lines) {
    const j = this.jar(jarName);
    for (const line of lines) {
      const c = parseSetCookie(line);
      const maxAge = c.attrs.find((a) => a.name.toLowerCase() === "max-age");
      if (c.value === "" || (maxAge && Number(maxAge.value) <= 0)) j.delete(c.name);
      else j.set(c.name, c.rawValue);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The scenarios. Run once per server, in the same order, with the same inputs; every step has
// a unique name, which is the row of the table.
// ---------------------------------------------------------------------------------------------

const PASS = "correct-horse-battery-1";
const PASS2 = "correct-horse-battery-2";
const PASS3 = "correct-horse-battery-3";

async function runScenarios(c, opt, stamp) {
  const tag = `${stamp}-${c.label.replace(/[^a-z0-9]/gi, "").toLowerCase()}`;
  const email = `compat-${tag}@example.com`;
  const email2Sent = `Compat-${tag}-Two@Example.COM`;
  const email2 = email2Sent.toLowerCase();
  const email3 = `compat-${tag}-three@example.com`;
  const emailNone = `compat-${tag}-nobody@example.com`;
  const emailBad = `compat-${tag}-bad@example.com`;
  c.role(email, "<email>");
  c.role(email.toUpperCase(), "<EMAIL-upper>");
  c.role(email2, "<email2>");
  c.role(email2Sent, "<email2-as-sent>");
  c.role(email3, "<email3>");
  c.role(emailNone, "<email-nobody>");
  c.role(emailBad, "<email-bad>");
  c.role(`compat-${tag}-extra@example.com`, "<email4>");
  c.role(c.origin, "<origin>");
  const name = "Compat User";
  const tok = (r) => (typeof r?.json?.token === "string" ? r.json.token : undefined);
  const sessionTokenCookie = (jar) => {
    for (const [k, v] of c.jar(jar)) if (/session_token$/.test(k)) return [k, v];
    return ["better-auth.session_token", ""];
  };

  // --- basics -----------------------------------------------------------------------------------
  await c.step("GET /ok", { path: "/ok" });

  // --- sessions to be aged (only with --age) ----------------------------------------------------
  const email5 = `compat-${tag}-aged@example.com`;
  c.role(email5, "<email5>");
  let agedSince = 0;
  if (opt.age > 0) {
    agedSince = Date.now();
    const r5 = await c.step("aged: sign-up (session OLD)", {
      path: "/sign-up/email", jar: "OLD", body: { name, email: email5, password: PASS } });
    c.role(r5.json?.user?.id, "<user5.id>");
    c.roleToken(tok(r5), "OLD");
    const r6 = await c.step("aged: sign-in rememberMe:false (session OLDD)", {
      path: "/sign-in/email", jar: "OLDD", body: { email: email5, password: PASS, rememberMe: false } });
    c.roleToken(tok(r6), "OLDD");
  }

  // --- sign-up ----------------------------------------------------------------------------------
  let r = await c.step("sign-up", { path: "/sign-up/email", jar: "A", body: { name, email, password: PASS } });
  c.role(r.json?.user?.id, "<user1.id>");
  c.roleToken(tok(r), "A");
  await c.step("sign-up duplicate email (422)", { path: "/sign-up/email", body: { name, email, password: PASS } });
  await c.step("sign-up duplicate email in upper case (422)", {
    path: "/sign-up/email", body: { name, email: email.toUpperCase(), password: PASS } });
  await c.step("sign-up bad email", { path: "/sign-up/email", body: { name, email: "not-an-email", password: PASS } });
  await c.step("sign-up short password", { path: "/sign-up/email", body: { name, email: emailBad, password: "short" } });
  await c.step("sign-up too long password (129)", {
    path: "/sign-up/email", body: { name, email: emailBad, password: "x".repeat(129) } });
  await c.step("sign-up empty password", { path: "/sign-up/email", body: { name, email: emailBad, password: "" } });
  await c.step("sign-up missing fields ({})", { path: "/sign-up/email", body: {} });
  await c.step("sign-up missing name", { path: "/sign-up/email", body: { email: emailBad, password: PASS } });
  await c.step("sign-up name not a string", {
    path: "/sign-up/email", body: { name: 42, email: emailBad, password: PASS } });
  await c.step("sign-up malformed JSON", { path: "/sign-up/email", raw: '{"name": "x", ' });
  await c.step("sign-up JSON array body", { path: "/sign-up/email", raw: "[1,2]" });
  await c.step("sign-up wrong content type (text/plain)", {
    path: "/sign-up/email", raw: JSON.stringify({ name, email: emailBad, password: PASS }), contentType: "text/plain" });
  await c.step("sign-up no content type", {
    path: "/sign-up/email", raw: JSON.stringify({ name, email: emailBad, password: PASS }), contentType: null });
  await c.step("sign-up no body", { path: "/sign-up/email", method: "POST" });
  await c.step("sign-up image null", { path: "/sign-up/email", body: { name, email: emailBad, password: PASS, image: null } });
  await c.step("sign-up rememberMe not a boolean", {
    path: "/sign-up/email", body: { name, email: emailBad, password: PASS, rememberMe: "no" } });
  await c.step("sign-up email with surrounding spaces", {
    path: "/sign-up/email", body: { name, email: ` ${emailBad} `, password: PASS } });
  r = await c.step("sign-up second user, mixed-case email, image", {
    path: "/sign-up/email", jar: "X",
    body: { name: "Other User", email: email2Sent, password: PASS, image: "https://img.example/a.png" } });
  c.role(r.json?.user?.id, "<user2.id>");
  c.roleToken(tok(r), "X");
  r = await c.step("sign-up ignores emailVerified and unknown fields", {
    path: "/sign-up/email", jar: "S4",
    body: { name, email: `compat-${tag}-extra@example.com`, password: PASS, emailVerified: true, role: "admin", id: "chosen-id" } });
  c.role(r.json?.user?.id, "<user4.id>");
  c.roleToken(tok(r), "S4");
  r = await c.step("sign-up rememberMe:false", {
    path: "/sign-up/email", jar: "R", body: { name: "", email: email3, password: PASS, rememberMe: false } });
  c.role(r.json?.user?.id, "<user3.id>");
  c.roleToken(tok(r), "R");
  await c.step("get-session after sign-up rememberMe:false", { path: "/get-session", jar: "R" });

  // --- sign-in ----------------------------------------------------------------------------------
  await c.step("sign-in wrong password (401)", { path: "/sign-in/email", body: { email, password: "wrong-password-123" } });
  await c.step("sign-in unknown email (401)", { path: "/sign-in/email", body: { email: emailNone, password: PASS } });
  await c.step("sign-in invalid email (400)", { path: "/sign-in/email", body: { email: "not-an-email", password: PASS } });
  await c.step("sign-in missing password", { path: "/sign-in/email", body: { email } });
  await c.step("sign-in short password is not length-checked (401)", {
    path: "/sign-in/email", body: { email, password: "x" } });
  await c.step("sign-in rememberMe not a boolean", {
    path: "/sign-in/email", body: { email, password: PASS, rememberMe: "false" } });
  await c.step("sign-in email not a string", { path: "/sign-in/email", body: { email: 42, password: PASS } });
  r = await c.step("sign-in Content-Type with charset", {
    path: "/sign-in/email", jar: "CS", contentType: "application/json; charset=utf-8", body: { email: email2, password: PASS } });
  c.roleToken(tok(r), "CS");
  r = await c.step("sign-in (session B)", { path: "/sign-in/email", jar: "B", body: { email, password: PASS } });
  c.roleToken(tok(r), "B");
  r = await c.step("sign-in upper-case email (session C)", {
    path: "/sign-in/email", jar: "C", body: { email: email.toUpperCase(), password: PASS } });
  c.roleToken(tok(r), "C");
  r = await c.step("sign-in rememberMe:false (session D)", {
    path: "/sign-in/email", jar: "D", body: { email, password: PASS, rememberMe: false } });
  c.roleToken(tok(r), "D");
  r = await c.step("sign-in form-urlencoded (session U)", {
    path: "/sign-in/email", jar: "U",
    raw: new URLSearchParams({ email, password: PASS }).toString(), contentType: "application/x-www-form-urlencoded" });
  c.roleToken(tok(r), "U");
  r = await c.step("sign-in with relative callbackURL", {
    path: "/sign-in/email", jar: "K", body: { email, password: PASS, callbackURL: "/dashboard" } });
  c.roleToken(tok(r), "K");
  await c.step("sign-in with untrusted callbackURL (403)", {
    path: "/sign-in/email", body: { email, password: PASS, callbackURL: `${UNTRUSTED_ORIGIN}/x` } });
  await c.step("sign-in with untrusted Origin, no cookie (403)", {
    path: "/sign-in/email", origin: UNTRUSTED_ORIGIN, body: { email, password: PASS } });
  await c.step("sign-in cross-site navigation (403)", {
    path: "/sign-in/email", origin: null,
    headers: { "sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate", "sec-fetch-dest": "document" },
    body: { email, password: PASS } });
  await c.step("sign-in without Origin, no cookie (allowed)", {
    path: "/sign-in/email", origin: null, jar: "N", body: { email: email2, password: PASS } });
  for (const [k, v] of c.jar("N")) if (/session_token$/.test(k)) c.role(decodeURIComponent(v).split(".")[0], "<token:N>");

  // --- client address (recorded as session.ipAddress) --------------------------------------------
  for (const [label, xff] of [["IPv4", "203.0.113.7"], ["IPv6", "2001:db8:abcd:12:1:2:3:4"],
    ["two hops", "203.0.113.7, 198.51.100.2"], ["garbage", "not-an-ip"]]) {
    const jar = `XFF-${label}`;
    r = await c.step(`sign-in X-Forwarded-For ${label}`, {
      path: "/sign-in/email", jar, headers: { "x-forwarded-for": xff }, body: { email: email2, password: PASS } });
    c.roleToken(tok(r), jar);
    await c.step(`get-session ipAddress from X-Forwarded-For ${label}`, { path: "/get-session", jar });
  }

  // --- get-session ------------------------------------------------------------------------------
  await c.step("get-session without cookie (null)", { path: "/get-session" });
  r = await c.step("get-session (B)", { path: "/get-session", jar: "B" });
  c.role(r.json?.session?.id, "<session:B.id>");
  r = await c.step("get-session (D, rememberMe:false)", { path: "/get-session", jar: "D" });
  c.role(r.json?.session?.id, "<session:D.id>");
  r = await c.step("get-session (X, second user)", { path: "/get-session", jar: "X" });
  c.role(r.json?.session?.id, "<session:X.id>");
  {
    const [ck, cv] = sessionTokenCookie("B");
    const dec = decodeURIComponent(cv);
    const [t, sig] = [dec.slice(0, dec.lastIndexOf(".")), dec.slice(dec.lastIndexOf(".") + 1)];
    const flip = (s) => (s[0] === "A" ? "B" : "A") + s.slice(1);
    await c.step("get-session tampered signature", {
      path: "/get-session", cookie: `${ck}=${encodeURIComponent(`${t}.${flip(sig)}`)}` });
    await c.step("get-session tampered token", {
      path: "/get-session", cookie: `${ck}=${encodeURIComponent(`${flip(t)}.${sig}`)}` });
    await c.step("get-session unsigned token", { path: "/get-session", cookie: `${ck}=${t}` });
    await c.step("get-session garbage cookie", { path: "/get-session", cookie: `${ck}=garbage` });
  }
  await c.step("get-session duplicate cookie name, garbage first", {
    path: "/get-session", cookie: `${sessionTokenCookie("B")[0]}=garbage; ${c.cookieHeader("B")}` });
  await c.step("get-session duplicate cookie name, valid first", {
    path: "/get-session", cookie: `${c.cookieHeader("B")}; ${sessionTokenCookie("B")[0]}=garbage` });
  await c.step("get-session ?disableRefresh=true (B)", { path: "/get-session", query: "disableRefresh=true", jar: "B" });

  // --- list-sessions ----------------------------------------------------------------------------
  await c.step("list-sessions (B)", { path: "/list-sessions", jar: "B" });
  await c.step("list-sessions without cookie (401)", { path: "/list-sessions" });

  // --- update-user ------------------------------------------------------------------------------
  await c.step("update-user name", { path: "/update-user", jar: "B", body: { name: "Renamed User" } });
  await c.step("update-user image string", { path: "/update-user", jar: "B", body: { image: "https://img.example/b.png" } });
  await c.step("update-user image null", { path: "/update-user", jar: "B", body: { image: null } });
  await c.step("update-user email (400)", { path: "/update-user", jar: "B", body: { email: "new@example.com" } });
  await c.step("update-user no fields ({})", { path: "/update-user", jar: "B", body: {} });
  await c.step("update-user only core field emailVerified", {
    path: "/update-user", jar: "B", body: { emailVerified: true } });
  await c.step("update-user name empty string", { path: "/update-user", jar: "X", body: { name: "" } });
  // wrong value types go to a user of their own (user4), so that what one server stores does not
  // change later answers about user1
  await c.step("update-user name not a string (number)", { path: "/update-user", jar: "S4", body: { name: 42 } });
  await c.step("update-user image not a string (number)", { path: "/update-user", jar: "S4", body: { image: 42 } });
  await c.step("get-session (S4) after wrong-type update-user", { path: "/get-session", jar: "S4" });
  await c.step("update-user name boolean", { path: "/update-user", jar: "S4", body: { name: true } });
  await c.step("update-user name object", { path: "/update-user", jar: "S4", body: { name: { a: 1 } } });
  await c.step("get-session (S4) after more wrong-type update-user", { path: "/get-session", jar: "S4" });
  await c.step("update-user array body", { path: "/update-user", jar: "B", raw: "[1]" });
  await c.step("update-user malformed JSON", { path: "/update-user", jar: "B", raw: "{nope" });
  await c.step("update-user wrong content type", {
    path: "/update-user", jar: "B", raw: JSON.stringify({ name: "x" }), contentType: "text/plain" });
  await c.step("update-user without cookie (401)", { path: "/update-user", body: { name: "x" } });
  await c.step("update-user (D, rememberMe:false) cookies", { path: "/update-user", jar: "D", body: { name: "Renamed User" } });
  await c.step("get-session (B) after update-user", { path: "/get-session", jar: "B" });

  // --- update-session ---------------------------------------------------------------------------
  await c.step("update-session no fields ({})", { path: "/update-session", jar: "B", body: {} });
  await c.step("update-session only core field", {
    path: "/update-session", jar: "B", body: { expiresAt: "2099-01-01T00:00:00.000Z", userAgent: "evil" } });
  await c.step("update-session array body", { path: "/update-session", jar: "B", raw: "[1]" });
  await c.step("update-session without cookie (401)", { path: "/update-session", body: { theme: "dark" } });
  if (opt.sessionFields) {
    // wrong type first, so that both servers end with the same stored value whatever they do with it
    await c.step("update-session theme wrong type (number)", { path: "/update-session", jar: "B", body: { theme: 42 } });
    await c.step("update-session theme", { path: "/update-session", jar: "B", body: { theme: "dark" } });
    await c.step("update-session theme null", { path: "/update-session", jar: "X", body: { theme: null } });
    await c.step("update-session theme (D, rememberMe:false) cookies", {
      path: "/update-session", jar: "D", body: { theme: "light" } });
    await c.step("get-session (B) after update-session", { path: "/get-session", jar: "B" });
  }

  // --- revoke-session ---------------------------------------------------------------------------
  const tokenOf = (jar) => decodeURIComponent(sessionTokenCookie(jar)[1]).split(".")[0] || "missing-token";
  const cookieC = c.cookieHeader("C");
  await c.step("revoke-session other session of same user (C, from B)", {
    path: "/revoke-session", jar: "B", body: { token: tokenOf("C") } });
  await c.step("get-session (C) after revoke", { path: "/get-session", cookie: cookieC });
  await c.step("revoke-session another user's token (X, from B)", {
    path: "/revoke-session", jar: "B", body: { token: tokenOf("X") } });
  await c.step("get-session (X) still valid", { path: "/get-session", jar: "X" });
  await c.step("revoke-session unknown token", { path: "/revoke-session", jar: "B", body: { token: "no-such-token" } });
  await c.step("revoke-session token not a string (400)", { path: "/revoke-session", jar: "B", body: { token: 42 } });
  await c.step("revoke-session Origin with trailing slash", {
    path: "/revoke-session", jar: "B", origin: `${c.origin}/`, body: { token: "no-such-token" } });
  await c.step("revoke-session Origin on another port (403)", {
    path: "/revoke-session", jar: "B", origin: `${new URL(c.origin).protocol}//${new URL(c.origin).hostname}:1`,
    body: { token: "no-such-token" } });
  await c.step("revoke-session untrusted Referer, no Origin (403)", {
    path: "/revoke-session", jar: "B", origin: null, referer: `${UNTRUSTED_ORIGIN}/page`, body: { token: "no-such-token" } });
  await c.step("revoke-session missing token (400)", { path: "/revoke-session", jar: "B", body: {} });
  await c.step("revoke-session without cookie (401)", { path: "/revoke-session", body: { token: "no-such-token" } });
  await c.step("revoke-session untrusted Origin, no cookie (401)", {
    path: "/revoke-session", origin: UNTRUSTED_ORIGIN, body: { token: "no-such-token" } });
  await c.step("revoke-session with trusted Referer, no Origin", {
    path: "/revoke-session", jar: "B", origin: null, referer: "own", body: { token: "no-such-token" } });
  const cookieU = c.cookieHeader("U");
  await c.step("revoke-session own current session (U)", {
    path: "/revoke-session", jar: "U", body: { token: tokenOf("U") } });
  await c.step("get-session (U) after own revoke", { path: "/get-session", cookie: cookieU });

  // --- change-password --------------------------------------------------------------------------
  await c.step("change-password wrong current (400)", {
    path: "/change-password", jar: "B", body: { currentPassword: "wrong-password-123", newPassword: PASS2 } });
  await c.step("change-password too short (400)", {
    path: "/change-password", jar: "B", body: { currentPassword: PASS, newPassword: "short" } });
  await c.step("change-password missing fields (400)", { path: "/change-password", jar: "B", body: {} });
  await c.step("change-password revokeOtherSessions not a boolean (400)", {
    path: "/change-password", jar: "B", body: { currentPassword: PASS, newPassword: PASS2, revokeOtherSessions: "yes" } });
  await c.step("change-password too long (400)", {
    path: "/change-password", jar: "B", body: { currentPassword: PASS, newPassword: "y".repeat(129) } });
  await c.step("change-password without cookie (401)", {
    path: "/change-password", body: { currentPassword: PASS, newPassword: PASS2 } });
  await c.step("change-password revokeOtherSessions:false", {
    path: "/change-password", jar: "B", body: { currentPassword: PASS, newPassword: PASS2, revokeOtherSessions: false } });
  await c.step("list-sessions (B) after change-password", { path: "/list-sessions", jar: "B" });
  const cookieB = c.cookieHeader("B");
  const cookieA = c.cookieHeader("A");
  r = await c.step("change-password revokeOtherSessions:true", {
    path: "/change-password", jar: "B", body: { currentPassword: PASS2, newPassword: PASS3, revokeOtherSessions: true } });
  c.roleToken(tok(r), "B2");
  await c.step("get-session old (B) cookie after revokeOtherSessions", { path: "/get-session", cookie: cookieB });
  await c.step("get-session (A) after revokeOtherSessions", { path: "/get-session", cookie: cookieA });
  r = await c.step("get-session new (B2) cookie", { path: "/get-session", jar: "B" });
  c.role(r.json?.session?.id, "<session:B2.id>");
  await c.step("list-sessions (B2)", { path: "/list-sessions", jar: "B" });
  r = await c.step("change-password revokeOtherSessions:true (R, rememberMe:false)", {
    path: "/change-password", jar: "R", body: { currentPassword: PASS, newPassword: PASS2, revokeOtherSessions: true } });
  c.roleToken(tok(r), "R2");
  await c.step("get-session (R2) after change-password", { path: "/get-session", jar: "R" });
  await c.step("sign-in with old password (401)", { path: "/sign-in/email", body: { email, password: PASS } });
  r = await c.step("sign-in with new password (session G)", { path: "/sign-in/email", jar: "G", body: { email, password: PASS3 } });
  c.roleToken(tok(r), "G");

  // --- revoke-other-sessions, revoke-sessions ---------------------------------------------------
  await c.step("revoke-other-sessions (from B2)", { path: "/revoke-other-sessions", jar: "B", body: {} });
  await c.step("get-session (G) after revoke-other-sessions", { path: "/get-session", jar: "G" });
  await c.step("list-sessions (B2) after revoke-other-sessions", { path: "/list-sessions", jar: "B" });
  await c.step("revoke-other-sessions without cookie (401)", { path: "/revoke-other-sessions", body: {} });
  r = await c.step("sign-in (session H)", { path: "/sign-in/email", jar: "H", body: { email, password: PASS3 } });
  c.roleToken(tok(r), "H");
  const cookieB2 = c.cookieHeader("B");
  const cookieH = c.cookieHeader("H");
  await c.step("revoke-sessions, no body (from H)", { path: "/revoke-sessions", method: "POST", jar: "H" });
  await c.step("get-session (H) after revoke-sessions", { path: "/get-session", cookie: cookieH });
  await c.step("get-session (B2) after revoke-sessions", { path: "/get-session", cookie: cookieB2 });
  await c.step("revoke-sessions without cookie (401)", { path: "/revoke-sessions", method: "POST" });

  // --- origin checks, methods, routing, sign-out ------------------------------------------------
  r = await c.step("sign-in (session F)", { path: "/sign-in/email", jar: "F", body: { email, password: PASS3 } });
  c.roleToken(tok(r), "F");
  await c.step("sign-out without Origin (403)", { path: "/sign-out", jar: "F", origin: null, body: {} });
  await c.step("sign-out with Origin: null (403)", { path: "/sign-out", jar: "F", origin: "null", body: {} });
  await c.step("sign-out with untrusted Origin (403)", { path: "/sign-out", jar: "F", origin: UNTRUSTED_ORIGIN, body: {} });
  await c.step("update-user with untrusted Origin (403)", {
    path: "/update-user", jar: "F", origin: UNTRUSTED_ORIGIN, body: { name: "x" } });
  await c.step("POST /get-session (405)", { path: "/get-session", jar: "F", body: {} });
  await c.step("POST /get-session without Origin (403 first)", { path: "/get-session", jar: "F", origin: null, body: {} });
  await c.step("POST /get-session without cookie (405)", { path: "/get-session", method: "POST" });
  await c.step("POST /list-sessions (wrong method)", { path: "/list-sessions", jar: "F", body: {} });
  await c.step("GET /sign-out (wrong method)", { path: "/sign-out", jar: "F" });
  await c.step("GET /sign-in/email (wrong method)", { path: "/sign-in/email" });
  await c.step("DELETE /revoke-session (wrong method)", { path: "/revoke-session", method: "DELETE", jar: "F" });
  await c.step("unknown path", { path: "/no-such-endpoint" });
  await c.step("unknown path, POST with cookie", { path: "/no-such-endpoint", jar: "F", body: {} });
  await c.step("trailing slash /get-session/", { path: "/get-session/", jar: "F" });
  await c.step("upper-case path /GET-SESSION", { path: "/GET-SESSION", jar: "F" });
  await c.step("double slash //get-session", { path: "//get-session", jar: "F" });
  await c.step("base path alone", { path: "" });
  await c.step("base path with slash", { path: "/" });
  await c.step("HEAD /ok", { path: "/ok", method: "HEAD" });
  await c.step("HEAD /get-session", { path: "/get-session", method: "HEAD", jar: "F" });
  await c.step("OPTIONS /get-session (preflight)", {
    path: "/get-session", method: "OPTIONS",
    headers: { "access-control-request-method": "GET", "access-control-request-headers": "content-type" } });
  await c.step("OPTIONS /get-session without Origin (no preflight)", {
    path: "/get-session", method: "OPTIONS", origin: null, headers: { "access-control-request-method": "GET" } });
  await c.step("OPTIONS /get-session without Access-Control-Request-Method (no preflight)", {
    path: "/get-session", method: "OPTIONS" });
  await c.step("GET /get-session with a body", { path: "/get-session", method: "GET", jar: "F", body: { x: 1 } });
  const cookieF = c.cookieHeader("F");
  await c.step("sign-out (F)", { path: "/sign-out", jar: "F", body: {} });
  await c.step("get-session (F) after sign-out", { path: "/get-session", cookie: cookieF });
  await c.step("sign-out without cookie and Origin", { path: "/sign-out", origin: null, method: "POST" });
  await c.step("sign-out (D, rememberMe:false) clears dont_remember", { path: "/sign-out", jar: "D", body: {} });

  // --- aged sessions (only with --age) -----------------------------------------------------------
  if (opt.age > 0) {
    c.mainPassSeconds = (Date.now() - agedSince) / 1000;
    const left = agedSince + opt.age * 1000 - Date.now();
    if (left > 0) {
      console.error(`compare: ${c.label}: waiting ${Math.ceil(left / 1000)} s for the aged sessions`);
      await new Promise((res) => setTimeout(res, left));
    }
    await c.step("aged: get-session ?disableRefresh=true (OLD)", { path: "/get-session", query: "disableRefresh=true", jar: "OLD" });
    await c.step("aged: list-sessions (OLD)", { path: "/list-sessions", jar: "OLD" });
    await c.step("aged: get-session (OLD)", { path: "/get-session", jar: "OLD" });
    await c.step("aged: get-session again (OLD)", { path: "/get-session", jar: "OLD" });
    await c.step("aged: get-session (OLDD, rememberMe:false)", { path: "/get-session", jar: "OLDD" });
    await c.step("aged: update-user (OLD)", { path: "/update-user", jar: "OLD", body: { name: "Aged User" } });
    await c.step("aged: change-password (OLD)", {
      path: "/change-password", jar: "OLD", body: { currentPassword: PASS, newPassword: PASS2 } });
    await c.step("aged: revoke-other-sessions (OLD)", { path: "/revoke-other-sessions", jar: "OLD", body: {} });
    await c.step("aged: POST /get-session (OLD)", { path: "/get-session", jar: "OLD", body: {} });
    await c.step("aged: sign-out (OLD)", { path: "/sign-out", jar: "OLD", body: {} });
  }

  await malformedValues(c, opt, tag);
}

// Values of the wrong type or size, each sent in turn in one field with the others valid.
const MALFORMED = [
  ["number", 5], ["zero", 0], ["true", true], ["false", false], ["null", null], ["array", ["x"]],
  ["empty array", []], ["object", { a: 1 }], ["empty string", ""], ["long string", "x".repeat(2_000)],
];

// Values whose stored text depends on how they are printed, as raw JSON (numbers as written).
const PRINTED = [
  ["1.0", "1.0"], ["1e21", "1e21"], ["-0", "-0"], ["0.1", "0.1"], ["object, integer keys first", '{"b": 1, "1": [2.50]}'],
  ["nested array", '[["a\\"b\\\\", null], 1.50, false, {"k": "v"}]'],
];

/**
 * Every field of every endpoint with each malformed value (after the other scenarios, and after
 * the aged ones, so that they do not lengthen the timed pass). Each route's requests use a user
 * and a session of their own, so that what one server accepts and the other refuses changes
 * nothing the other scenarios see.
 */
async function malformedValues(c, opt, tag) {
  const mail = (n) => {
    const e = `compat-${tag}-m${n}@example.com`;
    c.role(e, `<email-m${n}>`);
    return e;
  };
  const tok = (r) => (typeof r?.json?.token === "string" ? r.json.token : undefined);
  const base = { name: "Malformed", email: "", password: PASS };
  let n = 0;
  for (const field of ["name", "email", "password", "image", "rememberMe", "callbackURL"]) {
    for (const [label, value] of MALFORMED) {
      const body = { ...base, email: mail(++n), [field]: value };
      const r = await c.step(`malformed: sign-up ${field} ${label}`, { path: "/sign-up/email", jar: `MU${n}`, body });
      c.roleToken(tok(r), `MU${n}`);
    }
  }
  const who = mail("in");
  let r = await c.step("malformed: sign-up (user M)", { path: "/sign-up/email", jar: "M", body: { ...base, email: who } });
  c.roleToken(tok(r), "M");
  for (const field of ["email", "password", "rememberMe", "callbackURL"]) {
    for (const [label, value] of MALFORMED) {
      const jar = `MI-${field}-${label}`;
      r = await c.step(`malformed: sign-in ${field} ${label}`, {
        path: "/sign-in/email", jar, body: { email: who, password: PASS, [field]: value } });
      c.roleToken(tok(r), jar);
    }
  }
  for (const field of ["callbackURL", "disableRedirect", "state"]) {
    for (const [label, value] of MALFORMED) {
      await c.step(`malformed: sign-out ${field} ${label} (no session)`, { path: "/sign-out", body: { [field]: value } });
    }
  }
  for (const [label, value] of MALFORMED) {
    await c.step(`malformed: revoke-session token ${label}`, { path: "/revoke-session", jar: "M", body: { token: value } });
  }
  // What one server stores and the other refuses is put back after each field, so that later
  // answers compare what both hold.
  if (opt.sessionFields) {
    for (const [label, value] of MALFORMED) {
      await c.step(`malformed: update-session theme ${label}`, { path: "/update-session", jar: "M", body: { theme: value } });
    }
    for (const [label, raw] of PRINTED) {
      await c.step(`malformed: update-session theme ${label}`, { path: "/update-session", jar: "M", raw: `{"theme": ${raw}}` });
    }
    await c.step("malformed: update-session theme put back", { path: "/update-session", jar: "M", body: { theme: "dark" } });
  }
  for (const field of ["name", "image"]) {
    for (const [label, value] of MALFORMED) {
      await c.step(`malformed: update-user ${field} ${label}`, { path: "/update-user", jar: "M", body: { [field]: value } });
    }
    for (const [label, raw] of PRINTED) {
      await c.step(`malformed: update-user ${field} ${label}`, { path: "/update-user", jar: "M", raw: `{"${field}": ${raw}}` });
      await c.step(`malformed: get-session (M) after update-user ${field} ${label}`, { path: "/get-session", jar: "M" });
    }
    await c.step(`malformed: update-user ${field} put back`, { path: "/update-user", jar: "M", body: { [field]: "Malformed" } });
  }
  await c.step("malformed: get-session (M) after update-user", { path: "/get-session", jar: "M" });
  const change = { currentPassword: PASS, newPassword: PASS2 };
  for (const field of ["currentPassword", "newPassword", "revokeOtherSessions"]) {
    for (const [label, value] of MALFORMED) {
      // a value taken for a valid one would change the password: only wrong ones are sent
      if (field === "revokeOtherSessions" && (value === true || value === false)) continue;
      await c.step(`malformed: change-password ${field} ${label}`, {
        path: "/change-password", jar: "M", body: { ...change, [field]: value } });
    }
  }
  // Better Auth checks these on every POST, before the route reads its body.
  for (const field of ["callbackURL", "redirectTo", "errorCallbackURL", "newUserCallbackURL"]) {
    for (const [label, value] of [...MALFORMED, ["untrusted URL", `${UNTRUSTED_ORIGIN}/x`], ["relative path", "/x"]]) {
      await c.step(`malformed: revoke-session ${field} ${label}`, {
        path: "/revoke-session", jar: "M", body: { token: "no-such-token", [field]: value } });
    }
  }
  await c.step("malformed: revoke-session ?callbackURL untrusted", {
    path: "/revoke-session", query: `callbackURL=${encodeURIComponent(`${UNTRUSTED_ORIGIN}/x`)}`, jar: "M",
    body: { token: "no-such-token" } });
  await c.step("malformed: update-user callbackURL untrusted", {
    path: "/update-user", jar: "M", body: { name: "Malformed", callbackURL: `${UNTRUSTED_ORIGIN}/x` } });
  await c.step("malformed: sign-in callbackURL number, email number", {
    path: "/sign-in/email", body: { email: 5, password: PASS, callbackURL: 5 } });
  await c.step("malformed: sign-in callbackURL number, untrusted Origin", {
    path: "/sign-in/email", origin: UNTRUSTED_ORIGIN, body: { email: who, password: PASS, callbackURL: 5 } });
  // Better Auth reads the body, then checks the origin, then validates the body, then (on
  // sign-in and sign-up) checks Fetch Metadata; an unknown route or method is a 404 first.
  await c.step("malformed: update-user malformed JSON, untrusted Origin", {
    path: "/update-user", jar: "M", origin: UNTRUSTED_ORIGIN, raw: "{nope" });
  await c.step("malformed: update-user text/plain, untrusted Origin", {
    path: "/update-user", jar: "M", origin: UNTRUSTED_ORIGIN, raw: "x", contentType: "text/plain" });
  await c.step("malformed: update-user name number, untrusted Origin", {
    path: "/update-user", jar: "M", origin: UNTRUSTED_ORIGIN, body: { name: 5 } });
  await c.step("malformed: unknown path, cookie, untrusted Origin", {
    path: "/no-such-endpoint", jar: "M", origin: UNTRUSTED_ORIGIN, body: {} });
  await c.step("malformed: POST /list-sessions, cookie, untrusted Origin", {
    path: "/list-sessions", jar: "M", origin: UNTRUSTED_ORIGIN, body: {} });
  await c.step("malformed: sign-in email number, cross-site navigation", {
    path: "/sign-in/email", origin: null,
    headers: { "sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate", "sec-fetch-dest": "document" },
    body: { email: 5, password: PASS } });
  for (const path of ["/revoke-sessions", "/revoke-other-sessions"]) {
    await c.step(`malformed: ${path} callbackURL number`, { path, jar: "M", body: { callbackURL: 5 } });
    await c.step(`malformed: ${path} malformed JSON`, { path, jar: "M", raw: "{nope" });
    await c.step(`malformed: ${path} text/plain`, { path, jar: "M", raw: "x", contentType: "text/plain" });
    await c.step(`malformed: ${path} ?callbackURL untrusted`, {
      path, query: `callbackURL=${encodeURIComponent(`${UNTRUSTED_ORIGIN}/x`)}`, jar: "M", method: "POST" });
  }
  for (const q of ["disableRefresh=false", "disableRefresh=", "disableRefresh=0", "disableCookieCache=no",
    "disableRefresh=true&disableRefresh=false", "disableCookieCache=1&disableRefresh=yes"]) {
    await c.step(`malformed: get-session ?${q}`, { path: "/get-session", query: q, jar: "M" });
  }
  await c.step("malformed: list-sessions (M)", { path: "/list-sessions", jar: "M" });
}

// ---------------------------------------------------------------------------------------------
// Normalisation: random values become labels, so only structure and fixed values are compared
// ---------------------------------------------------------------------------------------------

const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const ISO_ANY = /^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?$/;
const RANDOM32 = /^[A-Za-z0-9]{32}$/;
const SIG = /^[A-Za-z0-9+/]{43}=$/;

// Dates are labelled relative to the time of the request: "now", "now+1d", "now+7d" within this
// many seconds, else "past"/"future". With --age it is age/2, so that an aged session's refreshed
// and unrefreshed dates get different labels.
let DATE_TOLERANCE = 120;

function dateLabel(s, at) {
  const t = Date.parse(s);
  if (Number.isNaN(t)) return `<unparsable-date ${s}>`;
  const d = (t - at) / 1000;
  const near = (x) => Math.abs(d - x) < DATE_TOLERANCE;
  const rel = near(0) ? "now" : near(86400) ? "now+1d" : near(604800) ? "now+7d" : d < 0 ? "past" : "future";
  return ISO_MS.test(s) ? `<date:${rel}>` : `<date(non-ISO-ms ${JSON.stringify(s)}):${rel}>`;
}

function normString(s, c, at) {
  if (c.roles.has(s)) return c.roles.get(s);
  if (ISO_ANY.test(s)) return dateLabel(s, at);
  if (RANDOM32.test(s)) return "<random32>";
  let out = s;
  for (const [val, label] of c.roles) if (val.length >= 8 && out.includes(val)) out = out.split(val).join(label);
  return out;
}

function normValue(v, c, at) {
  if (v === null || typeof v !== "object") return typeof v === "string" ? normString(v, c, at) : v;
  if (Array.isArray(v)) {
    // list-sessions order is unspecified: compare arrays as sorted multisets
    return v.map((x) => normValue(x, c, at)).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
  }
  const o = {};
  for (const k of Object.keys(v).sort()) o[k] = normValue(v[k], c, at);
  return o;
}

function normBody(resp, c, at) {
  if (resp.text === "") return { kind: "empty" };
  if (resp.jsonOk) return { kind: "json", value: normValue(resp.json, c, at) };
  return { kind: "text", text: normString(resp.text, c, at) };
}

function parseSetCookie(line) {
  const parts = line.split(";").map((p) => p.trim());
  const [nv, ...rest] = parts;
  const eq = nv.indexOf("=");
  const name = eq < 0 ? nv : nv.slice(0, eq);
  const rawValue = eq < 0 ? "" : nv.slice(eq + 1);
  let value = rawValue;
  try { value = decodeURIComponent(rawValue); } catch { /* keep raw */ }
  const attrs = rest.filter(Boolean).map((a) => {
    const i = a.indexOf("=");
    return i < 0 ? { name: a, value: null } : { name: a.slice(0, i), value: a.slice(i + 1) };
  });
  return { name, rawValue, value, attrs };
}

/** Normalises a decoded cookie-cache payload: also epoch numbers and unpadded signatures. */
function normPayload(v, c, at) {
  if (typeof v === "number") {
    if (v > 1e12 && v < 1e14) return dateLabel(new Date(v).toISOString(), at).replace("<date", "<epoch-ms");
    if (v > 1e9 && v < 1e11) return dateLabel(new Date(v * 1000).toISOString(), at).replace("<date", "<epoch-s");
    return v;
  }
  if (typeof v === "string") {
    if (/^[A-Za-z0-9_-]{43}$/.test(v)) return "<sig43>";
    return normString(v, c, at);
  }
  if (v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) return v.map((x) => normPayload(x, c, at));
  const o = {};
  for (const k of Object.keys(v).sort()) o[k] = normPayload(v[k], c, at);
  return o;
}

function normCookieValue(v, c, at) {
  if (v === "") return "";
  const dot = v.lastIndexOf(".");
  if (dot > 0 && SIG.test(v.slice(dot + 1))) return `${normString(v.slice(0, dot), c, at)}.<sig>`;
  if (c.roles.has(v) || RANDOM32.test(v)) return normString(v, c, at);
  const parts = v.split(".");
  if (parts.length === 3 && b64json(parts[0])?.alg) {
    const p = b64json(parts[1]);
    const h = b64json(parts[0]);
    if (typeof h.kid === "string") h.kid = "<kid>";
    return `<jwt header=${JSON.stringify(h)} payload=${p ? JSON.stringify(normPayload(p, c, at)) : "?"}>`;
  }
  if (parts.length === 5 && b64json(parts[0])?.enc) {
    // the key id is derived from the secret, which the two servers need not share
    const h = b64json(parts[0]);
    if (typeof h.kid === "string") h.kid = "<kid>";
    return `<jwe header=${JSON.stringify(h)}>`;
  }
  const j = b64json(v);
  if (j) return `<base64url-json ${JSON.stringify(normPayload(j, c, at))}>`;
  return "<opaque>";
}

function normCookie(line, c, at) {
  const p = parseSetCookie(line);
  const attrs = p.attrs.map((a) => (a.value === null ? a.name : `${a.name}=${a.value}`));
  return [`${p.name}=${normCookieValue(p.value, c, at)}`, ...attrs].join("; ");
}

const COMPARED_HEADERS = ["content-type", "cache-control", "pragma", "location", "x-retry-after", "allow"];

function normHeaders(resp, c, at) {
  const h = {};
  for (const k of COMPARED_HEADERS) {
    if (resp.headers[k] === undefined) continue;
    let v = resp.headers[k];
    if (k === "content-type") v = v.toLowerCase().replace(/\s+/g, "");
    h[k] = normString(v, c, at);
  }
  return h;
}

/** The key order of every object in a JSON value, by path (array elements share a path). */
function keyOrders(v, p = "", out = new Set()) {
  if (Array.isArray(v)) for (const x of v) keyOrders(x, `${p}[]`, out);
  else if (v !== null && typeof v === "object") {
    out.add(`${p || "(root)"}: ${Object.keys(v).join(",")}`);
    for (const [k, x] of Object.entries(v)) keyOrders(x, `${p}.${k}`, out);
  }
  return out;
}

function normalise(ex, c) {
  const r = ex.response;
  if (r.error) return { error: r.error };
  return {
    status: r.status,
    statusText: r.statusText,
    keyOrder: r.jsonOk ? [...keyOrders(r.json)].sort() : [],
    body: normBody(r, c, ex.at),
    cookies: r.setCookies.map((l) => normCookie(l, c, ex.at)),
    headers: normHeaders(r, c, ex.at),
  };
}

// ---------------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------------

const typeOf = (v) => (v === null ? "null" : Array.isArray(v) ? "array" : typeof v);
const show = (v) => (v === undefined ? "(absent)" : JSON.stringify(v));

/** Differences between two normalised JSON values, as "path: detail" strings. */
function diffJson(a, b, p, out) {
  const ta = typeOf(a);
  const tb = typeOf(b);
  if (ta !== tb) {
    out.push(`${p || "(root)"}: ${ta} ${show(a)} vs ${tb} ${show(b)}`);
    return;
  }
  if (ta === "object") {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (!(k in b)) out.push(`${p}.${k}: only in ref (${show(a[k])})`);
      else if (!(k in a)) out.push(`${p}.${k}: only in target (${show(b[k])})`);
      else diffJson(a[k], b[k], `${p}.${k}`, out);
    }
  } else if (ta === "array") {
    if (a.length !== b.length) out.push(`${p || "(root)"}: array length ${a.length} vs ${b.length}`);
    for (let i = 0; i < Math.min(a.length, b.length); i++) diffJson(a[i], b[i], `${p}[${i}]`, out);
  } else if (a !== b) {
    out.push(`${p || "(root)"}: ${show(a)} vs ${show(b)}`);
  }
}

function compareOne(na, nb, opt) {
  const diffs = []; // { aspect, detail }
  if (na.error || nb.error) {
    diffs.push({ aspect: "transport", detail: `ref: ${na.error ?? "ok"}; target: ${nb.error ?? "ok"}` });
    return diffs;
  }
  if (na.status !== nb.status) diffs.push({ aspect: "status", detail: `${na.status} vs ${nb.status}` });
  else if (na.statusText !== nb.statusText) {
    diffs.push({ aspect: "status-text", detail: `${show(na.statusText)} vs ${show(nb.statusText)}` });
  }
  if (na.body.kind !== nb.body.kind) {
    const d = (x) => (x.kind === "json" ? `json ${JSON.stringify(x.value)}` : x.kind === "text" ? `text ${show(x.text)}` : "empty");
    diffs.push({ aspect: "body", detail: `${d(na.body)} vs ${d(nb.body)}` });
  } else if (na.body.kind === "text" && na.body.text !== nb.body.text) {
    diffs.push({ aspect: "body", detail: `text ${show(na.body.text)} vs ${show(nb.body.text)}` });
  } else if (na.body.kind === "json") {
    const out = [];
    diffJson(na.body.value, nb.body.value, "", out);
    for (const d of out) {
      const isMsg = /^\.message: /.test(d);
      diffs.push({ aspect: isMsg ? "message" : "body", detail: d });
    }
  }
  if (opt.keyOrder && na.body.kind === "json" && nb.body.kind === "json" && !diffs.some((d) => d.aspect === "body")) {
    const kb = new Set(nb.keyOrder);
    const ka = new Set(na.keyOrder);
    for (const k of na.keyOrder) if (!kb.has(k)) diffs.push({ aspect: "key-order", detail: `ref ${k}` });
    for (const k of nb.keyOrder) if (!ka.has(k)) diffs.push({ aspect: "key-order", detail: `target ${k}` });
  }
  const ca = na.cookies;
  const cb = nb.cookies;
  if (JSON.stringify(ca) !== JSON.stringify(cb)) {
    const canon = (l) => l.split("; ").map((x, i) => (i === 0 ? x : x.toLowerCase())).sort().join("; ");
    const sameAsSets = ca.length === cb.length && ca.every((l, i) => canon(l) === canon(cb[i]));
    const sameMultiset = JSON.stringify([...ca].sort()) === JSON.stringify([...cb].sort());
    const detail = sameAsSets
      ? "attribute order/case differs only"
      : sameMultiset
        ? "same Set-Cookie lines in a different order"
        : "Set-Cookie lines differ";
    diffs.push({ aspect: "cookies", detail: `${detail}:\n      ref:    ${ca.length ? ca.join("\n              ") : "(none)"}\n      target: ${cb.length ? cb.join("\n              ") : "(none)"}` });
  }
  for (const k of new Set([...Object.keys(na.headers), ...Object.keys(nb.headers)])) {
    if (na.headers[k] !== nb.headers[k]) {
      diffs.push({ aspect: "headers", detail: `${k}: ${show(na.headers[k])} vs ${show(nb.headers[k])}` });
    }
  }
  return diffs;
}

function loadExpected(file) {
  if (!existsSync(file)) return [];
  const list = JSON.parse(readFileSync(file, "utf8"));
  if (!Array.isArray(list)) throw new Error(`${file}: expected a JSON array`);
  for (const e of list) {
    if (typeof e?.reason !== "string" || !e.reason.trim() || !(e.scenario || e.scenarioPattern)) {
      throw new Error(`${file}: every entry needs "scenario" or "scenarioPattern" and a "reason": ${JSON.stringify(e)}`);
    }
  }
  return list;
}

function isExpected(expected, scenario, d) {
  return expected.find((e) =>
    (e.scenario === scenario || (e.scenarioPattern && new RegExp(e.scenarioPattern).test(scenario))) &&
    (!e.aspect || e.aspect === d.aspect) &&
    (!e.contains || d.detail.includes(e.contains)));
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

function table(rows, header) {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (r) => "| " + r.map((x, i) => String(x).padEnd(w[i])).join(" | ") + " |";
  return [line(header), "|" + w.map((n) => "-".repeat(n + 2)).join("|") + "|", ...rows.map(line)].join("\n");
}

function describeRequest(ex) {
  const q = ex.request;
  const h = q.headers;
  const bits = [`${q.method} ${q.path}`];
  bits.push(h.cookie ? `cookie: ${q.jar ? `jar ${q.jar}` : "explicit"}` : "no cookie");
  bits.push(h.origin === undefined ? "no Origin" : h.origin.startsWith("http://untrusted") || h.origin === "null" ? `Origin: ${h.origin}` : "own Origin");
  if (h.referer) bits.push("Referer: own");
  if (h["content-type"]) bits.push(`Content-Type: ${h["content-type"]}`);
  else if (q.body !== null) bits.push("no Content-Type");
  for (const k of Object.keys(h).filter((k) => k.startsWith("sec-fetch"))) bits.push(`${k}: ${h[k]}`);
  let s = bits.join(", ");
  if (q.body !== null) s += `\n      body: ${q.body.length > 200 ? q.body.slice(0, 200) + "…" : q.body}`;
  return s;
}

function describeResponse(n, ex, raw) {
  if (n.error) return `error: ${n.error}`;
  const lines = [`${n.status} ${n.statusText}`];
  const b = n.body.kind === "json" ? JSON.stringify(n.body.value) : n.body.kind === "text" ? `(text) ${n.body.text}` : "(empty body)";
  lines.push(`body: ${b}`);
  for (const l of n.cookies) lines.push(`set-cookie: ${l}`);
  for (const [k, v] of Object.entries(n.headers)) lines.push(`${k}: ${v}`);
  if (raw) {
    lines.push(`raw body: ${ex.response.text}`);
    for (const l of ex.response.setCookies) lines.push(`raw set-cookie: ${l}`);
  }
  return lines.join("\n        ");
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  const expected = opt.expected.flatMap(loadExpected);
  if (opt.age > 0) DATE_TOLERANCE = Math.min(120, opt.age / 2);
  const ref = new Client(opt.refLabel, opt.ref, opt.basePath, opt.refOrigin, opt.timeout);
  const tgt = new Client(opt.targetLabel, opt.target, opt.basePath, opt.targetOrigin, opt.timeout);

  for (const c of [ref, tgt]) {
    try {
      const res = await httpRequest(`${c.api}/ok`, { method: "GET", headers: {}, timeout: opt.timeout });
      if (res.status !== 200) throw new Error(`GET ${c.api}/ok answered ${res.status}`);
    } catch (e) {
      console.error(`compare: ${c.label} at ${c.api} is not reachable: ${e?.message ?? e}`);
      process.exit(2);
    }
  }

  const stamp = `${Date.now()}${randomBytes(3).toString("hex")}`;
  const runOne = async (c) => {
    try {
      await runScenarios(c, opt, stamp);
      // with --age, dates are labelled within age/2 of each request: a pass (before the wait
      // for the aged sessions) longer than that makes the labels, and the comparison, meaningless
      const took = c.mainPassSeconds ?? 0;
      if (opt.age > 0 && took > opt.age / 2) {
        console.error(`compare: the pass against ${c.label} took ${took.toFixed(1)} s besides the wait, more than --age / 2 ` +
          `(${opt.age / 2} s): inconclusive (machine too busy?); use a larger --age with larger update_age and fresh_age`);
        process.exit(2);
      }
    } catch (e) {
      console.error(`compare: scenario run against ${c.label} failed: ${e.stack ?? e}`);
      process.exit(2);
    }
  };
  // Each server gets its own client, cookie jars and labels, so the two passes can run side by
  // side (with --age, the waits for the aged sessions then overlap).
  if (opt.sequential) for (const c of [ref, tgt]) await runOne(c);
  else await Promise.all([ref, tgt].map(runOne));

  const rows = [];
  const report = [];
  let unexpected = 0;
  let accepted = 0;
  for (const name of ref.order) {
    if (opt.only && !opt.only.test(name)) continue;
    const ea = ref.results.get(name);
    const eb = tgt.results.get(name);
    const na = normalise(ea, ref);
    const nb = normalise(eb, tgt);
    const diffs = compareOne(na, nb, opt).map((d) => ({ ...d, expected: isExpected(expected, name, d) ?? null }));
    const mark = (aspects) => {
      const ds = diffs.filter((d) => aspects.includes(d.aspect));
      if (!ds.length) return "yes";
      return ds.every((d) => d.expected) ? "accepted" : "NO";
    };
    const st = (n) => (n.error ? "ERR" : String(n.status));
    rows.push([name, st(na), st(nb), mark(["status", "status-text", "transport"]), mark(["body", "message", "key-order"]),
      mark(["cookies"]), mark(["headers"])]);
    for (const d of diffs) (d.expected ? accepted++ : unexpected++);
    report.push({ name, request: { ref: ea.request, target: eb.request }, ref: na, target: nb,
      rawRef: ea.response, rawTarget: eb.response, differences: diffs });
  }

  console.log(`reference: ${ref.api} (Origin ${ref.origin})`);
  console.log(`target:    ${tgt.api} (Origin ${tgt.origin})`);
  console.log("");
  console.log(table(rows, ["scenario", opt.refLabel, opt.targetLabel, "status", "body", "cookies", "headers"]));
  console.log("");

  const withDiffs = report.filter((r) => r.differences.length);
  if (!withDiffs.length) {
    console.log("No differences.");
  } else {
    // the same difference often shows in many scenarios (e.g. a key order): list each once
    const groups = new Map();
    for (const r of withDiffs) {
      for (const d of r.differences) {
        const key = `[${d.aspect}${d.expected ? ", accepted" : ""}] ${d.detail.split("\n")[0]}`;
        if (!groups.has(key)) groups.set(key, []);
        if (!groups.get(key).includes(r.name)) groups.get(key).push(r.name);
      }
    }
    console.log(`Distinct differences (${groups.size}) — "A vs B" reads ${opt.refLabel} vs ${opt.targetLabel}:`);
    for (const [key, names] of groups) {
      const shown = names.length > 4 ? `${names.slice(0, 4).join("; ")}; and ${names.length - 4} more` : names.join("; ");
      console.log(`- ${key}\n    in ${names.length} scenario(s): ${shown}`);
    }
    console.log("");
    console.log(`Differences by scenario (${unexpected} unexpected, ${accepted} accepted):`);
    let i = 0;
    for (const r of withDiffs) {
      i++;
      console.log("");
      console.log(`${i}. ${r.name}`);
      console.log(`   request: ${describeRequest(ref.results.get(r.name))}`);
      for (const d of r.differences) {
        console.log(`   - [${d.aspect}${d.expected ? ", accepted: " + d.expected.reason : ""}] ${d.detail}`);
      }
      console.log(`   ${opt.refLabel}:\n        ${describeResponse(r.ref, ref.results.get(r.name), opt.raw)}`);
      console.log(`   ${opt.targetLabel}:\n        ${describeResponse(r.target, tgt.results.get(r.name), opt.raw)}`);
    }
  }
  console.log("");
  console.log(`${rows.length} scenarios, ${withDiffs.length} with differences; ${unexpected} unexpected, ${accepted} accepted.`);

  if (opt.json) {
    writeFileSync(opt.json, JSON.stringify({ ref: opt.ref, target: opt.target, scenarios: report }, null, 2));
    console.log(`JSON written to ${opt.json}`);
  }
  process.exit(unexpected ? 1 : 0);
}

await main();
