// Better Auth's official client against sessiond and against the real Better Auth, as a library
// for the test files (test/client.test.mjs: the session options; test/profiles.test.mjs: Better
// Auth's plugin profiles).
//
// The same scenario (every session method of `createAuthClient`) runs against both servers,
// each on a database of its own, with no cookie cache and with each cache strategy asked for.
// Every step records its outcome: HTTP status, `data` (keys, value types, fixed values; random
// values and dates replaced by labels), `error` (status, statusText, code, message) and every
// Set-Cookie line (name, attributes and their order, value by its form). One test per step then
// compares sessiond's outcome with Better Auth's; a few steps also check an absolute
// expectation, so that a scenario that went wrong on both sides still fails.

import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createDatabase, migrateBetterAuth, startBetterAuth, startSessiond } from "./harness.mjs";
import { DEFAULT_COOKIE_NAMES, Device, Roles, cookieNames, outcome } from "./client.mjs";

const PASS1 = "client-suite-password-1";
const PASS2 = "client-suite-password-2";

/**
 * One server's step recorder: `step(name, device, fn, expect?)` performs one client call and
 * records its outcome under `name` (tokens and ids labelled first); `ok` and `err(status, code)`
 * are expectations for it. Returns { roles, results, problems, step, ok, err }.
 */
export function recorder(server) {
  const roles = new Roles();
  const results = new Map();
  const problems = [];
  const step = async (name, device, fn, expect) => {
    if (results.has(name)) throw new Error(`duplicate step ${name}`);
    const now = Date.now();
    const res = await device.call(server, fn);
    // tokens and ids seen in this response get stable labels before normalising
    const d = res.data;
    if (d?.token) roles.add(d.token, `<token:${device.name}>`);
    if (d?.session?.token) roles.add(d.session.token, `<token:${device.name}>`);
    if (d?.session?.id) roles.add(d.session.id, `<session:${device.name}>`);
    if (d?.user?.id) roles.add(d.user.id, `<user:${d.user.email?.split("-")[0] ?? "?"}>`);
    const tok = device.token();
    if (tok) roles.add(tok, `<token:${device.name}>`);
    results.set(name, outcome(res, roles, now));
    if (expect) {
      try {
        expect(res);
      } catch (e) {
        problems.push(`${name}: ${e.message}`);
      }
    }
    return res;
  };
  const ok = (res) => assert.equal(res.error, null, `unexpected error ${JSON.stringify(res.error)}`);
  const err = (status, code) => (res) => {
    assert.ok(res.error, `expected an error, got ${JSON.stringify(res.data)}`);
    assert.equal(res.error.status, status);
    if (code) assert.equal(res.error.code, code);
  };
  return { roles, results, problems, step, ok, err };
}

/**
 * The scenario, run once per server. `step(name, device, fn, expect?)` performs one client call
 * and records its outcome under `name`; `expect(res)` may assert on the raw result.
 *
 * A profile (see compareClients) adds to it: `signUpFields` are sent with X's sign-up, and
 * `steps(t)` runs its own steps after update-user, with t = { step, device, ok, err, A, X, anon,
 * email, stamp, PASS1, server }.
 */
async function scenario(server, { stamp, names = DEFAULT_COOKIE_NAMES, profile = {} }) {
  const { roles, results, problems, step, ok, err } = recorder(server);
  const nullSession = (res) => {
    ok(res);
    assert.equal(res.data, null, "expected no session");
  };

  const email = `ada-${stamp}@example.com`;
  const email2 = `bob-${stamp}@example.com`;
  roles.add(email, "<email:ada>");
  roles.add(email2, "<email:bob>");

  const device = (name) => new Device(name, names);
  const A = device("A");
  const B = device("B");
  const C = device("C");
  const X = device("X");
  const anon = device("anon");

  // sign-up
  await step("signUp.email", A, (c) => c.signUp.email({ name: "Ada", email, password: PASS1 }), ok);
  await step("signUp.email duplicate email → 422", anon,
    (c) => c.signUp.email({ name: "Ada", email, password: PASS1 }), err(422, "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL"));
  await step("signUp.email short password → 400", anon,
    (c) => c.signUp.email({ name: "Ada", email: `short-${stamp}@example.com`, password: "short" }), err(400, "PASSWORD_TOO_SHORT"));
  await step("signUp.email invalid email → 400", anon,
    (c) => c.signUp.email({ name: "Ada", email: "not-an-email", password: PASS1 }), err(400));
  await step("signUp.email rememberMe:false, image", X,
    (c) => c.signUp.email({ name: "Bob", email: email2, password: PASS1, image: "https://img.example/b.png", rememberMe: false, ...profile.signUpFields }), ok);

  // sign-in
  await step("signIn.email wrong password → 401", anon,
    (c) => c.signIn.email({ email, password: "wrong-password-1" }), err(401, "INVALID_EMAIL_OR_PASSWORD"));
  await step("signIn.email unknown email → 401", anon,
    (c) => c.signIn.email({ email: `nobody-${stamp}@example.com`, password: PASS1 }), err(401, "INVALID_EMAIL_OR_PASSWORD"));
  await step("signIn.email (B)", B, (c) => c.signIn.email({ email, password: PASS1 }), ok);
  await step("signIn.email rememberMe:false (C)", C, (c) => c.signIn.email({ email: email.toUpperCase(), password: PASS1, rememberMe: false }), ok);
  await step("signIn.email callbackURL (B2)", device("B2"),
    (c) => c.signIn.email({ email, password: PASS1, callbackURL: "/dashboard" }), ok);

  // get-session
  await step("getSession (A)", A, (c) => c.getSession(), (res) => {
    ok(res);
    assert.equal(res.data.session.token, A.token(), "the session of A's cookie");
    assert.equal(res.data.user.email, email);
  });
  await step("getSession disableCookieCache (A)", A, (c) => c.getSession({ query: { disableCookieCache: true } }), ok);
  await step("getSession disableRefresh (B)", B, (c) => c.getSession({ query: { disableRefresh: true } }), ok);
  await step("getSession rememberMe:false (C)", C, (c) => c.getSession(), ok);
  await step("getSession second user (X)", X, (c) => c.getSession(), (res) => {
    ok(res);
    assert.equal(res.data.user.email, email2);
  });
  await step("getSession without cookie → null", anon, (c) => c.getSession(), nullSession);

  // list-sessions
  await step("listSessions (A)", A, (c) => c.listSessions(), (res) => {
    ok(res);
    assert.deepEqual(new Set(res.data.map((s) => s.token)).has(B.token()), true, "B's session listed");
    assert.equal(res.data.length, 4);
  });
  await step("listSessions without cookie → 401", anon, (c) => c.listSessions(), err(401, "UNAUTHORIZED"));

  // update-session, update-user
  await step("updateSession theme (A)", A, (c) => c.updateSession({ theme: "dark" }), (res) => {
    ok(res);
    assert.equal(res.data.session.theme, "dark");
  });
  await step("getSession after updateSession (A)", A, (c) => c.getSession(), (res) => {
    ok(res);
    assert.equal(res.data.session.theme, "dark");
  });
  await step("updateSession theme null (X)", X, (c) => c.updateSession({ theme: null }), ok);
  // with an empty body the client sends GET, which no server routes
  await step("updateSession no fields → GET → 404", A, (c) => c.updateSession({}), err(404));
  await step("updateSession without cookie → 401", anon, (c) => c.updateSession({ theme: "x" }), err(401));
  await step("updateUser name (A)", A, (c) => c.updateUser({ name: "Ada Lovelace" }), ok);
  await step("getSession after updateUser (A)", A, (c) => c.getSession(), (res) => {
    ok(res);
    assert.equal(res.data.user.name, "Ada Lovelace");
  });
  await step("getSession after updateUser, other device (B)", B, (c) => c.getSession(), ok);
  await step("getSession after updateUser, other device, disableCookieCache (B)", B,
    (c) => c.getSession({ query: { disableCookieCache: true } }), ok);

  // the profile's own steps
  await profile.steps?.({ step, device, ok, err, A, X, anon, email, stamp, PASS1, server });

  // revoke-session
  const cStale = C.clone("C-stale");
  await step("revokeSession C from A", A, (c) => c.revokeSession({ token: C.token() }), ok);
  await step("getSession revoked (C)", cStale, (c) => c.getSession(), ok);
  await step("getSession revoked, disableCookieCache (C)", C, (c) => c.getSession({ query: { disableCookieCache: true } }), nullSession);
  await step("revokeSession another user's token (X from A)", A, (c) => c.revokeSession({ token: X.token() }), ok);
  await step("getSession still valid (X)", X, (c) => c.getSession({ query: { disableCookieCache: true } }), (res) => {
    ok(res);
    assert.ok(res.data?.session, "X's session survives a revoke by another user");
  });
  await step("revokeSession unknown token", A, (c) => c.revokeSession({ token: "no-such-token" }), ok);
  await step("revokeSession without cookie → 401", anon, (c) => c.revokeSession({ token: "x" }), err(401));

  // change-password
  await step("changePassword wrong current → 400", A,
    (c) => c.changePassword({ currentPassword: "wrong-password-1", newPassword: PASS2 }), err(400, "INVALID_PASSWORD"));
  await step("changePassword too short → 400", A,
    (c) => c.changePassword({ currentPassword: PASS1, newPassword: "short" }), err(400, "PASSWORD_TOO_SHORT"));
  const bBefore = B.clone("B-before");
  await step("changePassword revokeOtherSessions (A)", A,
    (c) => c.changePassword({ currentPassword: PASS1, newPassword: PASS2, revokeOtherSessions: true }), (res) => {
      ok(res);
      assert.equal(typeof res.data.token, "string");
      assert.equal(res.data.token, A.token(), "A's cookie holds the new session");
    });
  await step("getSession other device after changePassword, disableCookieCache (B)", bBefore,
    (c) => c.getSession({ query: { disableCookieCache: true } }), nullSession);
  await step("getSession new session after changePassword (A)", A, (c) => c.getSession(), ok);
  await step("signIn.email old password → 401", anon,
    (c) => c.signIn.email({ email, password: PASS1 }), err(401, "INVALID_EMAIL_OR_PASSWORD"));
  const D = device("D");
  await step("signIn.email new password (D)", D, (c) => c.signIn.email({ email, password: PASS2 }), ok);
  const E = device("E");
  await step("signIn.email new password (E)", E, (c) => c.signIn.email({ email, password: PASS2 }), ok);

  // revoke-other-sessions
  await step("listSessions before revokeOtherSessions (D)", D, (c) => c.listSessions(), ok);
  await step("revokeOtherSessions (D)", D, (c) => c.revokeOtherSessions(), ok);
  await step("getSession after revokeOtherSessions, disableCookieCache (A)", A.clone("A-stale"),
    (c) => c.getSession({ query: { disableCookieCache: true } }), nullSession);
  await step("listSessions after revokeOtherSessions (D)", D, (c) => c.listSessions(), (res) => {
    ok(res);
    assert.equal(res.data.length, 1);
  });
  await step("revokeOtherSessions without cookie → 401", anon, (c) => c.revokeOtherSessions(), err(401));

  // revoke-sessions
  const F = device("F");
  await step("signIn.email (F)", F, (c) => c.signIn.email({ email, password: PASS2 }), ok);
  const dBefore = D.clone("D-before");
  await step("revokeSessions (F)", F, (c) => c.revokeSessions(), ok);
  await step("getSession after revokeSessions, disableCookieCache (D)", dBefore,
    (c) => c.getSession({ query: { disableCookieCache: true } }), nullSession);
  await step("getSession after revokeSessions (F)", F, (c) => c.getSession({ query: { disableCookieCache: true } }), nullSession);
  await step("revokeSessions without cookie → 401", anon, (c) => c.revokeSessions(), err(401));

  // sign-out
  const G = device("G");
  await step("signIn.email (G)", G, (c) => c.signIn.email({ email, password: PASS2 }), ok);
  const gBefore = G.clone("G-before");
  await step("signOut (G)", G, (c) => c.signOut(), (res) => {
    ok(res);
    assert.deepEqual(res.data, { success: true });
    assert.equal(G.token(), null, "session cookie cleared");
  });
  await step("getSession after signOut, old cookie, disableCookieCache (G)", gBefore,
    (c) => c.getSession({ query: { disableCookieCache: true } }), nullSession);
  await step("signOut rememberMe:false (X)", X, (c) => c.signOut(), ok);
  await step("signOut without cookie", anon, (c) => c.signOut(), () => {});

  return { results, problems };
}

/**
 * Runs the scenario against a fresh Better Auth and a fresh sessiond (each on its own database,
 * both with `options`), once per cache strategy. Returns one run per strategy: { strategy, ba,
 * sd } or { error }. Call it at the top level of a test file, then `clientTests(runs, tag)`.
 */
export async function compareClients({ options = {}, strategies, profile = {}, label = "client" }) {
  const runs = [];
  const dbs = [];
  const servers = [];
  const names = cookieNames(options);
  try {
    const baDb = await createDatabase(`${label}_ba`);
    dbs.push(baDb);
    const sdDb = await createDatabase(`${label}_sd`);
    dbs.push(sdDb);
    await migrateBetterAuth(baDb.url, options);
    for (const cache of strategies) {
      // Better Auth's cache semantics on both sides (sessiond's immediate revocation off)
      const o = { ...options, cache, immediateRevocation: false };
      const [ba, sd] = await Promise.all([
        startBetterAuth({ databaseUrl: baDb.url, options: o }),
        startSessiond({ databaseUrl: sdDb.url, options: o }),
      ]);
      servers.push(ba, sd);
      // the same emails on both sides (each has its own database)
      const stamp = `${cache ?? "nocache"}${Date.now()}${randomBytes(2).toString("hex")}`;
      // both at once: each server has its own database, devices and labels
      const [baRun, sdRun] = await Promise.all([
        scenario(ba, { stamp, names, profile }), scenario(sd, { stamp, names, profile }),
      ]);
      runs.push({ strategy: cache, ba: baRun, sd: sdRun });
      await Promise.all([ba.stop(), sd.stop()]);
    }
  } catch (e) {
    runs.push({ error: e });
    for (const s of servers) if (s.logTail) console.error(`--- ${s.label} log ---\n${s.logTail(20)}`);
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    for (const db of dbs) await db.drop();
  }
  return runs;
}

/** One test per step and strategy (sessiond's outcome equals Better Auth's), named `[<tag>, cache=…] <step>`. */
export function clientTests(runs, tag = "client", adjust = (_name, got) => got) {
  for (const run of runs) {
    if (run.error) {
      test(`[${tag}] setup`, () => {
        throw run.error;
      });
      continue;
    }
    const t = `[${tag}, cache=${run.strategy ?? "off"}]`;
    test(`${t} Better Auth meets the scenario's own expectations`, () => {
      assert.deepEqual(run.ba.problems, []);
    });
    test(`${t} sessiond meets the scenario's own expectations`, () => {
      assert.deepEqual(run.sd.problems, []);
    });
    for (const [name, ref] of run.ba.results) {
      test(`${t} ${name}`, () => {
        const got = adjust(name, run.sd.results.get(name), ref);
        assert.deepStrictEqual(got, ref, `sessiond (actual) vs Better Auth (expected) differ for "${name}"`);
      });
    }
  }
}
