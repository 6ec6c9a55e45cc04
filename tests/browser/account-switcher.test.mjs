// The account switcher (examples/account-switcher) in headless Chromium against a real
// sessiond with plugins.multi_session on:
//
//   the page and the API  http://app.example.test:<page>   examples/account-switcher/serve.mjs,
//                                                          forwarding /api/auth/* to sessiond
//   another origin        http://evil.example.test:<evil>  same site, not trusted
//
// The page's own controls, as a person uses them: sign in (create) A, sign in B, switch to
// A, sign out of A (the active one: B becomes active), sign out of every account. Then the
// cookies the browser held are put back in a fresh browser: none is a session any more.
// Attacks kept as tests: script access to the cookies, a token the browser does not hold, a
// forged _multi- cookie naming another browser's session, and a cross-origin POST /sign-out.
//
// Run with: bash tests/browser/run.sh. Artifacts in target/browser/ (account-switcher.png, the
// screenshot docs/account-switcher.png shows; switcher-sessiond.log; switcher-page.log).
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
const SECRET = "switcher-test-secret-Qm4nW8xR2tZ6bK1sH9cF3gJ7dP5yA0vL";
const PASSWORD = "correct-horse-battery-staple";
const MULTI = "better-auth.session_token_multi-";

fs.mkdirSync(ARTIFACTS, { recursive: true });
const procs = [];
const cleanups = [];
process.on("exit", () => { for (const p of procs) p.kill("SIGKILL"); });

const freePort = () => new Promise((resolve, reject) => {
  const s = net.createServer().listen(0, "127.0.0.1", () => {
    const { port } = s.address();
    s.close(() => resolve(port));
  }).on("error", reject);
});

/** Starts a process whose output goes to target/browser/<name>.log and is kept. */
function run(name, cmd, args, env) {
  const log = fs.createWriteStream(path.join(ARTIFACTS, `${name}.log`));
  const child = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  child.output = "";
  for (const s of [child.stdout, child.stderr]) s.on("data", (d) => { child.output += d; log.write(d); });
  child.done = new Promise((r) => child.on("exit", r));
  procs.push(child);
  return child;
}

/** Polls `ok()` until it holds, for at most 15 s. */
async function until(what, ok, child) {
  const end = Date.now() + 15000;
  while (Date.now() < end) {
    if (child.exitCode !== null) throw new Error(`${what}: exited\n${child.output}`);
    if (await ok().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: timed out\n${child.output}`);
}

async function browser(name) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sessiond-switcher-${name}-`));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM_BIN, headless: true, viewport: { width: 900, height: 820 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
      "--host-resolver-rules=MAP *.example.test 127.0.0.1"],
    deviceScaleFactor: 1, locale: "en-GB", timezoneId: "UTC",
  });
  context.setDefaultTimeout(10000);
  cleanups.push(async () => {
    await context.close().catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const page = context.pages()[0] || (await context.newPage());
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(e.message));
  return { context, page };
}

/** A JSON call from inside the page (its origin, its cookies): { status, data }. */
const fromPage = (page, method, p, body) => page.evaluate(async ([method, p, body]) => {
  const r = await fetch(`/api/auth${p}`, {
    method, credentials: "same-origin",
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: r.status, data: await r.json().catch(() => null) };
}, [method, p, body]);

async function addAccount(page, email, name) {
  await page.fill("#name", name);
  await page.fill("#email", email);
  await page.fill("#password", PASSWORD);
  await page.click("#sign-up");
  await page.waitForSelector(`body[data-active="${email}"]`);
}

const rows = (page) => page.$$eval("#accounts > li.account", (lis) => lis.map((li) => ({
  email: li.dataset.email, active: li.dataset.active === "true",
})));

describe("account switcher", () => {
  const st = {};
  before(async () => {
    const sessiondPort = await freePort();
    const server = run("switcher-page", process.execPath, [path.join(ROOT, "examples/account-switcher/serve.mjs")], {
      PATH: process.env.PATH, HOST: "127.0.0.1", PORT: "0", SESSIOND_UPSTREAM: `http://127.0.0.1:${sessiondPort}`,
    });
    await until("page server", async () => /account switcher on http:\/\/127\.0\.0\.1:(\d+)/.test(server.output), server);
    const pagePort = /account switcher on http:\/\/127\.0\.0\.1:(\d+)/.exec(server.output)[1];
    st.APP = `http://app.example.test:${pagePort}`;
    st.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "sessiond-switcher-data-"));
    // What examples/account-switcher/README.md documents.
    const sessiond = (st.sessiond = run("switcher-sessiond", SESSIOND_BIN, ["serve"], {
      PATH: process.env.PATH, HOME: process.env.HOME || os.tmpdir(),
      SESSIOND_HOST: "127.0.0.1", SESSIOND_PORT: String(sessiondPort), SESSIOND_DATA_DIR: st.dataDir,
      BETTER_AUTH_SECRET: SECRET, SESSIOND_BASE_URL: st.APP,
      SESSIOND_PLUGINS__MULTI_SESSION__ENABLED: "true", SESSIOND_LOG__FORMAT: "pretty", NO_COLOR: "1",
    }));
    await until("sessiond through the page server", async () => (await fetch(`http://127.0.0.1:${pagePort}/api/auth/ok`)).ok, sessiond);
    // The other origin: a page of the same site that tries to sign the visitor out.
    const evil = http.createServer((req, res) => {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end("<!doctype html><title>Prizes</title><h1>Prizes</h1>");
    });
    await new Promise((r) => evil.listen(0, "127.0.0.1", r));
    st.EVIL = `http://evil.example.test:${evil.address().port}`;
    cleanups.push(() => new Promise((r) => { evil.closeAllConnections(); evil.close(r); }));
  });
  after(async () => {
    while (cleanups.length) await cleanups.pop()();
    for (const p of procs) if (p.exitCode === null) { p.kill("SIGTERM"); await p.done; }
    fs.rmSync(st.dataDir, { recursive: true, force: true });
  });

  it("signs in A, signs in B, switches, signs out of the active one, signs out", async () => {
    const { context, page } = await browser("user");
    await page.goto(st.APP);
    await page.waitForSelector('body[data-view="signed-out"]');
    const a = "ada@example.test";
    const b = "ben@example.test";
    await addAccount(page, a, "Ada");
    await addAccount(page, b, "Ben");
    assert.deepStrictEqual(
      (await rows(page)).sort((x, y) => (x.email < y.email ? -1 : 1)),
      [{ email: a, active: false }, { email: b, active: true }],
    );
    await page.screenshot({ path: path.join(ARTIFACTS, "account-switcher.png") });
    // docs/account-switcher.png is this screenshot, copied by hand when the page changes.
    const multi = (await context.cookies()).filter((c) => c.name.startsWith(MULTI));
    assert.equal(multi.length, 2);
    assert.ok(multi.every((c) => c.httpOnly && c.sameSite === "Lax"), "HttpOnly, Lax _multi- cookies");

    // Switch to A.
    await page.click(`li.account[data-email="${a}"] button.switch`);
    await page.waitForSelector(`body[data-active="${a}"]`);
    assert.equal((await fromPage(page, "GET", "/get-session")).data.user.email, a);

    // Sign out of A, the active account: B becomes active.
    await page.click(`li.account[data-email="${a}"] button.revoke`);
    await page.waitForSelector(`body[data-active="${b}"][data-accounts="1"]`);
    assert.deepStrictEqual(await rows(page), [{ email: b, active: true }]);
    const held = await context.cookies();

    // Sign out of every account.
    await page.click("#sign-out-all");
    await page.waitForSelector('body[data-view="signed-out"][data-accounts="0"]');
    assert.deepStrictEqual((await context.cookies()).map((c) => c.name), []);
    assert.deepStrictEqual(page.errors, []);

    // Every cookie the browser held before signing out, in a fresh browser: no session.
    const replay = await browser("replay");
    await replay.context.addCookies(held);
    await replay.page.goto(st.APP);
    await replay.page.waitForSelector('body[data-view="signed-out"]');
    assert.equal((await fromPage(replay.page, "GET", "/get-session")).data, null);
    assert.deepStrictEqual((await fromPage(replay.page, "GET", "/multi-session/list-device-sessions")).data, []);
  });

  it("attacks: cookies out of script reach, tokens not held, forged _multi- cookies, cross-origin sign-out", async () => {
    // The victim, in a browser of its own.
    const victim = await browser("victim");
    await victim.page.goto(st.APP);
    await addAccount(victim.page, "vic@example.test", "Vic");
    const vToken = (await fromPage(victim.page, "GET", "/get-session")).data.session.token;

    const { context, page } = await browser("attacker");
    await page.goto(st.APP);
    await addAccount(page, "mal@example.test", "Mal");
    const mine = (await fromPage(page, "GET", "/get-session")).data.session.token;
    // No session cookie is readable by script.
    assert.equal(await page.evaluate(() => document.cookie), "");
    // A token the browser holds no cookie for.
    for (const route of ["/multi-session/set-active", "/multi-session/revoke"]) {
      const r = await fromPage(page, "POST", route, { sessionToken: vToken });
      assert.equal(r.status, 401, route);
      assert.equal(r.data.code, "INVALID_SESSION_TOKEN");
    }
    // A forged _multi- cookie naming the victim's session: the token alone, and with a made-up signature.
    for (const value of [vToken, encodeURIComponent(`${vToken}.${"A".repeat(43)}=`)]) {
      await context.addCookies([{ name: `${MULTI}${vToken.toLowerCase()}`, value, url: st.APP, httpOnly: true }]);
      const r = await fromPage(page, "POST", "/multi-session/set-active", { sessionToken: vToken });
      assert.equal(r.status, 401);
      assert.equal((await fromPage(page, "GET", "/get-session")).data.session.token, mine);
      assert.equal((await fromPage(page, "POST", "/multi-session/revoke", { sessionToken: vToken })).status, 401);
      const listed = (await fromPage(page, "GET", "/multi-session/list-device-sessions")).data;
      assert.deepStrictEqual(listed.map((e) => e.user.email), ["mal@example.test"]);
    }
    assert.equal((await fromPage(victim.page, "GET", "/get-session")).data.session.token, vToken);

    // Another origin of the same site posts a sign-out with the victim's cookies: refused.
    const evil = await victim.context.newPage();
    await evil.goto(st.EVIL);
    await evil.evaluate(async (app) => {
      await fetch(`${app}/api/auth/sign-out`, { method: "POST", credentials: "include", mode: "no-cors" }).catch(() => {});
    }, st.APP);
    // It reached sessiond, which refused it (the origin check), and the victim is still signed in.
    await until("the refused sign-out in sessiond's log", async () => /path=\/api\/auth\/sign-out\b.*status=403/.test(st.sessiond.output), st.sessiond);
    assert.equal((await fromPage(victim.page, "GET", "/get-session")).data.session.token, vToken);
    assert.ok(!st.sessiond.output.includes(vToken) && !st.sessiond.output.includes(mine), "no token in sessiond's log");
  });
});
