// The devices example (examples/devices) in headless Chromium against a real sessiond.
//
// 1. A frontend on another subdomain of the same site (the usual setup):
//      sessiond          http://auth.example.test:<edge>  behind a tiny forwarding proxy that
//                                                         sets X-Forwarded-For, as nginx would
//      the devices page  http://app.example.test:<page>   examples/devices/serve.mjs, trusted
//      an untrusted page http://evil.example.test:<evil>  same site, NOT in trusted_origins
//      another site      http://elsewhere.test:<evil>     cross-site, not trusted
//    Chromium maps those names to 127.0.0.1 (--host-resolver-rules). auth. and app.example.test
//    are one site (registrable domain example.test), so sessiond's default SameSite=Lax cookie
//    travels with credentialed cross-origin fetches. Every step of the page, HttpOnly, and what
//    untrusted origins get.
// 2. A frontend on another *site*: sessiond at http://auth.localhost:<edge>, the page at
//    http://app.localhost:<page>. Chromium makes each x.localhost its own site (and a secure
//    context), and blocks third-party cookies: only SameSite=None; Secure; Partitioned works.
//
// Run with: bash tests/browser/run.sh   (or: node --test tests/browser/ once set up)
// Artifacts in target/browser/: devices.png (and devices-phone.png, sign-up.png), *sessiond.log,
// requests.log (every request through the proxy), console.log (browser consoles).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const SESSIOND_BIN = process.env.SESSIOND_BIN || path.join(ROOT, "target/debug/sessiond");
const CHROMIUM_BIN = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const ARTIFACTS = path.join(ROOT, "target/browser");
const SECRET = "browser-test-secret-Vn3kQ8wR1xM6tZ9bL4sH7cF2gJ5dP0yA";
const PASSWORD = "correct-horse-battery-staple";
const EMAIL = "ada@example.test";

const SITE = "example.test";
const OTHER_SITE = "elsewhere.test";
const CHROMIUM_FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  `--host-resolver-rules=MAP *.${SITE} 127.0.0.1, MAP ${OTHER_SITE} 127.0.0.1, MAP *.localhost 127.0.0.1`,
];
const PHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Mobile/15E148 Safari/604.1";
const PC_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:141.0) Gecko/20100101 Firefox/141.0";

fs.mkdirSync(ARTIFACTS, { recursive: true });
const requestLog = fs.createWriteStream(path.join(ARTIFACTS, "requests.log"));
const consoleLog = fs.createWriteStream(path.join(ARTIFACTS, "console.log"));

// ---------------------------------------------------------------------------------------------
// Processes and servers, all cleaned up in after() (and killed on any exit).

const children = new Set();
const cleanups = [];
process.on("exit", () => { for (const c of children) c.kill("SIGKILL"); });

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    }).on("error", reject);
  });
}

function listen(server) {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server.address().port)));
}

function start(name, cmd, args, opts) {
  const log = fs.createWriteStream(path.join(ARTIFACTS, `${name}.log`));
  const child = spawn(cmd, args, { ...opts, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  child.output = "";
  const collect = (d) => { child.output += d; log.write(d); };
  child.stdout.on("data", collect);
  child.stderr.on("data", collect);
  child.exited = new Promise((resolve) => child.on("exit", (code, signal) => {
    children.delete(child);
    log.end();
    resolve({ code, signal });
  }));
  cleanups.push(() => stop(child));
  return child;
}

async function stop(child) {
  if (!children.has(child)) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await child.exited;
  clearTimeout(timer);
}

/** Resolves once `ok()` holds, polling; rejects after `ms` or if `child` dies first. */
async function until(what, ok, { ms = 15000, child } = {}) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (child && !children.has(child)) throw new Error(`${what}: process exited\n${child.output}`);
    if (await ok().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: timed out${child ? `\n${child.output}` : ""}`);
}

/**
 * The reverse proxy in front of sessiond: passes everything through unchanged and sets
 * X-Forwarded-For to the peer address, so sessiond records the browser's IP. Every exchange
 * is kept (method, path, origin, whether a cookie went up, status, CORS grant, Set-Cookie).
 */
async function startEdge(upstreamPort) {
  const exchanges = [];
    const server = http.createServer((req, res) => {
    const ip = req.socket.remoteAddress.replace(/^::ffff:/, "");
    const headers = { ...req.headers, "x-forwarded-for": ip, "x-forwarded-proto": "http" };
    const up = http.request(
      { host: "127.0.0.1", port: upstreamPort, method: req.method, path: req.url, headers },
      (r) => {
        const entry = {
          method: req.method, path: req.url, host: req.headers.host,
          origin: req.headers.origin ?? null,
          secFetchSite: req.headers["sec-fetch-site"] ?? null,
          secFetchMode: req.headers["sec-fetch-mode"] ?? null,
          contentType: req.headers["content-type"] ?? null,
          sentCookie: /better-auth\.session_token=/.test(req.headers.cookie || ""),
          status: r.statusCode,
          allowOrigin: r.headers["access-control-allow-origin"] ?? null,
          allowCredentials: r.headers["access-control-allow-credentials"] ?? null,
          setCookie: r.headers["set-cookie"] ?? [],
        };
        let body = "";
        r.on("data", (d) => { if (body.length < 2000) body += d; });
        r.on("end", () => {
          entry.body = body.slice(0, 2000);
          exchanges.push(entry);
          requestLog.write(JSON.stringify(entry) + "\n");
        });
        res.writeHead(r.statusCode, r.rawHeaders);
        r.pipe(res);
      },
    );
    up.on("error", (e) => res.writeHead(502, { "content-type": "text/plain" }).end(`edge: ${e.message}\n`));
    req.pipe(up);
  });
  cleanups.push(() => new Promise((r) => { server.closeAllConnections(); server.close(r); }));
  return { port: await listen(server), exchanges };
}

/** The untrusted page: a plain HTML page on a third origin (and on another site). */
function startEvil() {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end("<!doctype html><title>Free prizes</title><h1>Totally legitimate page</h1>");
  });
  cleanups.push(() => new Promise((r) => { server.closeAllConnections(); server.close(r); }));
  return listen(server);
}

/**
 * sessiond (behind the proxy) at http://<authHost>:<port>, the devices page at
 * http://<appHost>:<port>, trusted; `extraEnv` adds sessiond settings.
 */
async function startStack(name, { authHost, appHost, extraEnv = {} }) {
  const sessiondPort = await freePort();
  const edge = await startEdge(sessiondPort);
  const AUTH = `http://${authHost}:${edge.port}`;

  const pageServer = start(`${name}-page-server`, process.execPath, [path.join(ROOT, "examples/devices/serve.mjs")], {
    env: { PATH: process.env.PATH, HOST: "127.0.0.1", PORT: "0", SESSIOND_URL: AUTH },
  });
  let pagePort;
  await until("page server", async () => {
    const m = /devices page on http:\/\/127\.0\.0\.1:(\d+)/.exec(pageServer.output);
    if (m) pagePort = Number(m[1]);
    return !!m;
  }, { child: pageServer });
  const APP = `http://${appHost}:${pagePort}`;

  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "sessiond-browser-data-"));
  cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  // Exactly what examples/devices/README.md documents.
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME || os.tmpdir(),
    SESSIOND_HOST: "127.0.0.1",
    SESSIOND_PORT: String(sessiondPort),
    SESSIOND_DATA_DIR: dataDir,
    BETTER_AUTH_SECRET: SECRET,
    SESSIOND_BASE_URL: AUTH,
    SESSIOND_TRUSTED_ORIGINS: JSON.stringify([APP]),
    SESSIOND_SESSION__LIST_SESSIONS_TOKENS: "none",
    SESSIOND_LOG__FORMAT: "pretty",
    ...extraEnv,
  };
  const sessiond = start(`${name}-sessiond`, SESSIOND_BIN, ["serve"], { cwd: dataDir, env });
  await until("sessiond /ok through the proxy", async () => {
    const r = await fetch(`http://127.0.0.1:${edge.port}/api/auth/ok`);
    return r.ok;
  }, { child: sessiond });
  return { AUTH, API: `${AUTH}/api/auth`, APP, exchanges: edge.exchanges };
}

async function cleanUp() {
  while (cleanups.length) await cleanups.pop()();
}

// ---------------------------------------------------------------------------------------------
// Browsers: each "device" is its own Chromium with a fresh user-data-dir.

const pageErrors = [];
const consoleMessages = [];
async function device(name, { userAgent, viewport, isMobile } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sessiond-browser-${name}-`));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM_BIN,
    headless: true,
    args: CHROMIUM_FLAGS,
    userAgent,
    viewport: viewport || { width: 1120, height: 760 },
    isMobile,
    hasTouch: isMobile,
    deviceScaleFactor: 1,
    locale: "en-GB",
    timezoneId: "UTC",
    timeout: 30000,
  });
  cleanups.push(async () => {
    await context.close().catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  });
  context.setDefaultTimeout(10000);
  const watch = (page) => {
    page.on("console", (m) => {
      consoleMessages.push({ device: name, type: m.type(), text: m.text(), url: page.url() });
      consoleLog.write(`[${name}] ${m.type()}: ${m.text()}\n`);
    });
    page.on("pageerror", (e) => pageErrors.push(`[${name}] ${e.message}`));
  };
  context.on("page", watch);
  const page = context.pages()[0] || (await context.newPage());
  watch(page);
  return { name, context, page };
}

// ---------------------------------------------------------------------------------------------
// Page helpers (the page's own controls, as a person would use them)

const view = (page) => page.locator("body").getAttribute("data-view");

async function waitView(page, name) {
  await page.waitForSelector(`body[data-view="${name}"]`);
}

async function deviceRows(page) {
  return page.$$eval("#devices > li.device", (lis) => lis.map((li) => ({
    id: li.dataset.sessionId,
    current: li.dataset.current === "true",
    name: li.querySelector(".device-name").firstChild.textContent,
    userAgent: li.querySelector(".device-ua").textContent,
    ip: li.querySelector(".ip").textContent.replace(/^IP /, ""),
    createdAt: li.querySelector(".created time").getAttribute("datetime"),
    updatedAt: li.querySelector(".updated time").getAttribute("datetime"),
    expiresAt: li.querySelector(".expires time").getAttribute("datetime"),
    times: [...li.querySelectorAll("time")].map((t) => t.textContent),
  })));
}

async function waitDevices(page, n) {
  await page.waitForFunction(
    (n) => document.body.dataset.view === "devices" && document.querySelectorAll("#devices > li.device").length === n,
    n,
  );
  return deviceRows(page);
}

async function signIn(page, email, password) {
  await page.click("#tab-sign-in");
  await page.fill("#sign-in-form input[name=email]", email);
  await page.fill("#sign-in-form input[name=password]", password);
  await page.click("#sign-in-form button[type=submit]");
}

/** sessiond's answer to a credentialed fetch made by the page itself (its origin, its cookies). */
function fetchFromPage(page, url) {
  return page.evaluate(async (url) => {
    const r = await fetch(url, { credentials: "include" });
    return { status: r.status, body: await r.json() };
  }, url);
}

function sessionCookies(cookies) {
  return cookies.filter((c) => c.name.endsWith("session_token"));
}

// ---------------------------------------------------------------------------------------------

describe("devices page on another subdomain of the same site (SameSite=Lax)", { timeout: 90000 }, () => {
  let API, APP, EVIL, ELSEWHERE, exchanges;
  let laptop, phone, pc;
  const ids = {};

  before(async () => {
    assert.ok(fs.existsSync(SESSIOND_BIN), `${SESSIOND_BIN} missing: cargo build (or set SESSIOND_BIN)`);
    assert.ok(fs.existsSync(CHROMIUM_BIN), `${CHROMIUM_BIN} missing: apt-get install chromium (or set CHROMIUM_BIN)`);
    ({ API, APP, exchanges } = await startStack("subdomain", { authHost: `auth.${SITE}`, appHost: `app.${SITE}` }));
    const evilPort = await startEvil();
    EVIL = `http://evil.${SITE}:${evilPort}`;
    ELSEWHERE = `http://${OTHER_SITE}:${evilPort}`;
    [laptop, phone, pc] = await Promise.all([
      device("laptop"),
      device("phone", { userAgent: PHONE_UA, viewport: { width: 390, height: 844 }, isMobile: true }),
      device("pc", { userAgent: PC_UA }),
    ]);
  });

  after(cleanUp);

  it("signs up, with the session cookie HttpOnly on sessiond's origin", async () => {
    const { page, context } = laptop;
    await page.goto(`${APP}/`);
    await waitView(page, "auth");
    await page.click("#tab-sign-up");
    await page.screenshot({ path: path.join(ARTIFACTS, "sign-up.png"), animations: "disabled" });
    await page.fill("#sign-up-form input[name=name]", "Ada Lovelace");
    await page.fill("#sign-up-form input[name=email]", EMAIL);
    await page.fill("#sign-up-form input[name=password]", PASSWORD);
    await page.click("#sign-up-form button[type=submit]");
    const rows = await waitDevices(page, 1);
    assert.equal(await page.textContent("#who-name"), "Ada Lovelace");
    assert.equal(await page.textContent("#who-email"), EMAIL);
    assert.equal(rows[0].current, true);
    assert.equal(rows[0].userAgent, await page.evaluate(() => navigator.userAgent));
    assert.equal(rows[0].ip, "127.0.0.1");
    assert.equal(await page.textContent("#current-ip"), "127.0.0.1");
    ids.first = rows[0].id;

    // The cookie lives on sessiond's host, HttpOnly, SameSite=Lax, and no script sees it.
    const cookies = sessionCookies(await context.cookies());
    assert.equal(cookies.length, 1, JSON.stringify(cookies));
    assert.equal(cookies[0].name, "better-auth.session_token");
    assert.equal(cookies[0].domain, `auth.${SITE}`);
    assert.equal(cookies[0].httpOnly, true);
    assert.equal(cookies[0].sameSite, "Lax");
    assert.equal(await page.evaluate(() => document.cookie), "", "page origin");
    const onAuth = await context.newPage();
    await onAuth.goto(`${API}/ok`);
    assert.equal(await onAuth.evaluate(() => document.cookie), "", "sessiond's own origin");
    assert.equal(await onAuth.evaluate(() => document.body.textContent), '{"ok":true}');
    await onAuth.close();

    // What went over the wire: the sign-up was a cross-origin request granted to the page.
    const signUp = exchanges.find((e) => e.method === "POST" && e.path === "/api/auth/sign-up/email");
    assert.equal(signUp.origin, APP);
    assert.equal(signUp.allowOrigin, APP);
    assert.equal(signUp.allowCredentials, "true");
  });

  it("signs out, refuses a wrong password, and signs in again", async () => {
    const { page, context } = laptop;
    await page.click("#sign-out");
    await waitView(page, "auth");
    assert.deepEqual(sessionCookies(await context.cookies()), []);
    assert.deepEqual(await fetchFromPage(page, `${API}/get-session`), { status: 200, body: null });

    await signIn(page, EMAIL, "not-the-password");
    await page.waitForSelector("#auth-error:not([hidden])");
    assert.equal(await page.textContent("#auth-error"), "Invalid email or password");
    assert.equal(await view(page), "auth");

    await signIn(page, EMAIL, PASSWORD);
    const rows = await waitDevices(page, 1);
    assert.notEqual(rows[0].id, ids.first, "a new session");
    ids.laptop = rows[0].id;
  });

  it("lists every device with its user agent, IP and times", async () => {
    for (const [d, n] of [[phone, 2], [pc, 3]]) {
      await d.page.goto(`${APP}/`);
      await waitView(d.page, "auth");
      await signIn(d.page, EMAIL, PASSWORD);
      ids[d.name] = (await waitDevices(d.page, n)).find((r) => r.current).id;
    }
    assert.equal(new Set(Object.values(ids)).size, 4);

    const { page } = laptop;
    await page.click("#refresh");
    const rows = await waitDevices(page, 3);
    assert.deepEqual(rows.map((r) => r.id), [ids.laptop, ids.pc, ids.phone], "this device first, then newest");
    assert.deepEqual(rows.map((r) => r.current), [true, false, false]);
    assert.deepEqual(rows.map((r) => r.name), ["Headless Chrome on Linux", "Firefox on Windows", "Safari on iPhone"]);

    // Exactly what sessiond returns to the page's own credentialed fetch.
    const listed = await fetchFromPage(page, `${API}/list-sessions`);
    assert.equal(listed.status, 200);
    assert.equal(listed.body.length, 3);
    for (const s of listed.body) {
      // list_sessions_tokens = "none": the page sees no session's token.
      assert.equal(s.token, undefined);
      const row = rows.find((r) => r.id === s.id);
      assert.ok(row, `session ${s.id} shown`);
      assert.equal(row.userAgent, s.userAgent);
      assert.equal(row.ip, s.ipAddress);
      assert.equal(s.ipAddress, "127.0.0.1");
      assert.equal(row.createdAt, s.createdAt);
      assert.equal(row.updatedAt, s.updatedAt);
      assert.equal(row.expiresAt, s.expiresAt);
      assert.deepEqual(row.times.slice(0, 2), ["just now", "just now"]);
      assert.equal(row.times[2], "in 7 days");
    }
    assert.deepEqual(
      new Set(listed.body.map((s) => s.userAgent)),
      new Set([await page.evaluate(() => navigator.userAgent), PHONE_UA, PC_UA]),
    );
    const current = await fetchFromPage(page, `${API}/get-session`);
    assert.equal(current.body.session.id, ids.laptop);
    assert.equal(await page.textContent("#current-device"), "Headless Chrome on Linux");
    assert.equal(await page.getAttribute("#current-created time", "datetime"), current.body.session.createdAt);
    assert.equal(await page.getAttribute("#current-expires time", "datetime"), current.body.session.expiresAt);

    await page.mouse.move(0, 0); // no hover or focus styles in the picture
    await page.screenshot({ path: path.join(ARTIFACTS, "devices.png"), fullPage: true, animations: "disabled" });
    await phone.page.click("#refresh");
    await waitDevices(phone.page, 3);
    await phone.page.mouse.move(0, 0);
    await phone.page.screenshot({ path: path.join(ARTIFACTS, "devices-phone.png"), fullPage: true, animations: "disabled" });
  });

  it("gives untrusted origins nothing, though the browser sends them the cookie", async () => {
    const probe = async (origin) => {
      const page = await laptop.context.newPage();
      await page.goto(`${origin}/`);
      const out = await page.evaluate(async (api) => {
        const attempt = async (init, path) => {
          try {
            const r = await fetch(api + path, { credentials: "include", ...init });
            return { type: r.type, status: r.status, body: r.type === "opaque" ? null : await r.text() };
          } catch (e) {
            return { error: `${e.name}: ${e.message}` };
          }
        };
        return {
          cookie: document.cookie,
          getSession: await attempt({}, "/get-session"),
          listSessions: await attempt({}, "/list-sessions"),
          revokeJson: await attempt({ method: "POST", headers: { "content-type": "application/json" }, body: "{}" }, "/revoke-sessions"),
          // "Simple" requests go out without a preflight; the response stays opaque.
          revokeSimple: await attempt({ method: "POST", mode: "no-cors", headers: { "content-type": "text/plain" }, body: "{}" }, "/revoke-sessions"),
          signOutSimple: await attempt({ method: "POST", mode: "no-cors" }, "/sign-out"),
        };
      }, API);
      await page.close();
      return out;
    };
    const failed = { error: "TypeError: Failed to fetch" };
    const opaque = { type: "opaque", status: 0, body: null };
    for (const origin of [EVIL, ELSEWHERE]) {
      const out = await probe(origin);
      assert.deepEqual(out, {
        cookie: "", getSession: failed, listSessions: failed, revokeJson: failed,
        revokeSimple: opaque, signOutSimple: opaque,
      }, origin);
    }
    // Chromium says why: CORS, for the three readable requests of each origin.
    for (const origin of [EVIL, ELSEWHERE]) {
      const blocked = consoleMessages.filter((m) => m.text.includes(`from origin '${origin}' has been blocked by CORS policy`));
      assert.equal(blocked.length, 3, origin);
    }
    const from = (origin) => exchanges.filter((e) => e.origin === origin);
    // Same site: the cookie went up, sessiond answered without any CORS grant.
    const evilGets = from(EVIL).filter((e) => e.method === "GET");
    assert.deepEqual(evilGets.map((e) => [e.path, e.sentCookie, e.status, e.allowOrigin]), [
      ["/api/auth/get-session", true, 200, null],
      ["/api/auth/list-sessions", true, 200, null],
    ]);
    // The JSON POST stopped at its preflight; the simple POSTs were refused: the text/plain
    // body before the origin check (415, Better Auth's order of checks), the bodiless
    // sign-out by the origin check.
    assert.deepEqual(from(EVIL).filter((e) => e.method !== "GET").map((e) => [e.method, e.path, e.status, e.allowOrigin]), [
      ["OPTIONS", "/api/auth/revoke-sessions", 200, null],
      ["POST", "/api/auth/revoke-sessions", 415, null],
      ["POST", "/api/auth/sign-out", 403, null],
    ]);
    for (const e of from(EVIL).filter((e) => e.method === "POST")) {
      if (e.path.endsWith("/sign-out")) assert.equal(JSON.parse(e.body).code, "INVALID_ORIGIN", e.path);
      assert.deepEqual(e.setCookie, [], "nothing cleared");
    }
    // Another site: SameSite=Lax keeps the cookie home.
    assert.ok(from(ELSEWHERE).length >= 2);
    assert.ok(from(ELSEWHERE).every((e) => !e.sentCookie && e.allowOrigin === null), JSON.stringify(from(ELSEWHERE)));

    // Still signed in everywhere.
    await laptop.page.click("#refresh");
    await waitDevices(laptop.page, 3);
  });

  it("signs out one device", async () => {
    const { page } = laptop;
    await page.click(`#devices > li[data-session-id="${ids.phone}"] button.revoke`);
    const rows = await waitDevices(page, 2);
    assert.deepEqual(rows.map((r) => r.id), [ids.laptop, ids.pc]);
    assert.equal(await page.textContent("#toast"), "Signed out Safari on iPhone.");
    // The phone finds itself signed out.
    await phone.page.reload();
    await waitView(phone.page, "auth");
    assert.deepEqual(await fetchFromPage(phone.page, `${API}/get-session`), { status: 200, body: null });
  });

  it("signs out every other device", async () => {
    const { page } = laptop;
    await page.click("#revoke-others");
    const rows = await waitDevices(page, 1);
    assert.deepEqual(rows.map((r) => [r.id, r.current]), [[ids.laptop, true]]);
    assert.equal(await page.isDisabled("#revoke-others"), true);
    await pc.page.click("#refresh");
    await waitView(pc.page, "auth");
    assert.equal(await pc.page.textContent("#auth-error"), "Your session has ended. Sign in again.");
  });

  it("signs out", async () => {
    const { page, context } = laptop;
    await page.click("#sign-out");
    await waitView(page, "auth");
    assert.deepEqual(sessionCookies(await context.cookies()), []);
    assert.deepEqual(await fetchFromPage(page, `${API}/get-session`), { status: 200, body: null });
    await page.reload();
    await waitView(page, "auth");
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(consoleMessages.filter((m) => /Content.Security.Policy/i.test(m.text)), []);
  });
});

describe("devices page on another site: SameSite=None; Partitioned", { timeout: 60000 }, () => {
  let API, APP, exchanges, browser;

  before(async () => {
    ({ API, APP, exchanges } = await startStack("cross-site", {
      authHost: "auth.localhost",
      appHost: "app.localhost",
      extraEnv: {
        SESSIOND_ADVANCED__DEFAULT_COOKIE_ATTRIBUTES__SAME_SITE: "none",
        SESSIOND_ADVANCED__DEFAULT_COOKIE_ATTRIBUTES__PARTITIONED: "true",
      },
    }));
    browser = await device("other-site");
  });

  after(cleanUp);

  it("signs up, lists the device, signs out, with a partitioned HttpOnly cookie", async () => {
    const { page, context } = browser;
    await page.goto(`${APP}/`);
    await waitView(page, "auth");
    await page.click("#tab-sign-up");
    await page.fill("#sign-up-form input[name=name]", "Grace Hopper");
    await page.fill("#sign-up-form input[name=email]", "grace@example.test");
    await page.fill("#sign-up-form input[name=password]", PASSWORD);
    await page.click("#sign-up-form button[type=submit]");
    const rows = await waitDevices(page, 1);
    assert.equal(rows[0].current, true);
    assert.equal(rows[0].ip, "127.0.0.1");
    assert.equal(await page.textContent("#who-name"), "Grace Hopper");

    const cookies = sessionCookies(await context.cookies());
    assert.equal(cookies.length, 1, JSON.stringify(cookies));
    assert.equal(cookies[0].domain, "auth.localhost");
    assert.equal(cookies[0].httpOnly, true);
    assert.equal(cookies[0].secure, true);
    assert.equal(cookies[0].sameSite, "None");
    assert.equal(cookies[0].partitionKey, "http://app.localhost", "partitioned under the page's site (each x.localhost is a site)");
    assert.equal(await page.evaluate(() => document.cookie), "");
    const signUp = exchanges.find((e) => e.method === "POST" && e.path === "/api/auth/sign-up/email");
    assert.match(signUp.setCookie[0], /; HttpOnly; Secure; SameSite=None; Partitioned$/);
    assert.equal(signUp.allowOrigin, APP);

    await page.click("#sign-out");
    await waitView(page, "auth");
    assert.deepEqual(sessionCookies(await context.cookies()), []);
    assert.deepEqual(await fetchFromPage(page, `${API}/get-session`), { status: 200, body: null });
    assert.deepEqual(pageErrors, []);
  });
});

after(() => {
  requestLog.end();
  consoleLog.end();
});
