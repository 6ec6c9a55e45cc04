// Better Auth's multiSession() beside sessiond's plugins.multi_session (maximumSessions 3 on
// both, each on its own database): the official client with multiSessionClient() runs one
// scenario on each server, and every step's outcome is compared — status, error code and
// message, the body (random values as labels), and the Set-Cookie lines (names with the
// token in them as labels, signed values by form, attributes as written).
//
// The scenario: four sign-ups in one browser (the fourth past maximumSessions gets no
// _multi- cookie), list-device-sessions, set-active (a held token, in upper case too, an
// unknown one, one named by a forged cookie), revoke of a held session that is not the
// active one, of the active one (the next held session becomes active), signing in again
// as a held user (the earlier session ends), change-password with revokeOtherSessions (its
// new session gets a _multi- cookie), a revoke without a session, and sign-out
// ending every held session.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { multiSessionClient } from "better-auth/client/plugins";
import { createHmac } from "node:crypto";
import { SECRET, createDatabase, migrateBetterAuth, startBetterAuth, startSessiond } from "../lib/harness.mjs";
import { Device, Roles, norm, parseSetCookie } from "../lib/client.mjs";

const OPTIONS = { multiSession: { max: 3 } };
const PASS = "multi-password-1";
const SIGNED = /^([A-Za-z0-9]{32})\.([A-Za-z0-9+/]{43}=)$/;

function device(name) {
  const d = new Device(name);
  d.plugins = [multiSessionClient()];
  return d;
}

/** A Set-Cookie line with labels for the tokens in its name and value. */
function cookieShape(line, labels) {
  const c = parseSetCookie(line);
  const mark = c.name.indexOf("_multi-");
  const name = mark < 0 ? c.name : `${c.name.slice(0, mark + 7)}${labels.get(c.name.slice(mark + 7)) ?? "<unknown>"}`;
  const m = SIGNED.exec(c.value);
  const value = c.rawValue === "" ? "" : m ? `${labels.get(m[1].toLowerCase()) ?? "<unknown>"}.<sig>` : "<other>";
  return `${name}=${value}; ${c.attrs.map((a) => (a.value === null ? a.name : `${a.name}=${a.value}`)).join("; ")}`;
}

/**
 * A response's Set-Cookie lines as shapes, ordered by cookie name. Browsers apply lines for
 * different names independently, so only the order within one name is kept (a stable sort):
 * the order of the _multi- cookies that sign-out clears varied from run to run.
 */
function cookieShapes(res, labels) {
  const name = (shape) => shape.slice(0, shape.indexOf("="));
  return res.setCookies
    .map((l) => cookieShape(l, labels))
    .sort((a, b) => (name(a) < name(b) ? -1 : name(a) > name(b) ? 1 : 0));
}

async function scenario(server, stamp) {
  const roles = new Roles();
  const labels = new Map(); // lower-cased token -> label
  const results = [];
  const known = (token, label) => {
    roles.add(token, label);
    labels.set(token.toLowerCase(), label);
  };
  const step = async (name, dev, fn) => {
    const now = Date.now();
    const res = await dev.call(server, fn);
    const d = res.data;
    if (d?.user?.id) roles.add(d.user.id, `<user:${d.user.email?.split("-")[0]}>`);
    results.push({
      name,
      status: res.status,
      error: res.error ? { status: res.error.status, code: res.error.code, message: res.error.message } : null,
      data: norm(d, roles, now),
      // norm sorts arrays: the list's order is compared on its own.
      order: Array.isArray(d) ? d.map((e) => roles.map.get(e.session?.token) ?? "<other>") : undefined,
      cookies: cookieShapes(res, labels),
    });
    return res;
  };
  const D = device("D");
  const tokens = {};
  for (const who of ["ann", "bob", "cat", "dan"]) {
    const email = `${who}-${stamp}@example.com`;
    roles.add(email, `<email:${who}>`);
    const c = await D.call(server, (c) => c.signUp.email({ name: who, email, password: PASS }));
    tokens[who] = c.data.token;
    known(c.data.token, `<token:${who}>`);
    results.push({ name: `sign-up ${who}`, status: c.status, cookies: cookieShapes(c, labels) });
  }
  await step("list-device-sessions (three held; dan past the cap)", D, (c) => c.multiSession.listDeviceSessions());
  await step("set-active ann", D, (c) => c.multiSession.setActive({ sessionToken: tokens.ann }));
  await step("set-active bob in upper case", D, (c) => c.multiSession.setActive({ sessionToken: tokens.bob.toUpperCase() }));
  await step("set-active dan (no _multi- cookie)", D, (c) => c.multiSession.setActive({ sessionToken: tokens.dan }));
  await step("set-active unknown", D, (c) => c.multiSession.setActive({ sessionToken: "x".repeat(32) }));
  const forged = D.clone("F");
  forged.cookies.set(`better-auth.session_token_multi-${tokens.dan.toLowerCase()}`, encodeURIComponent(`${tokens.dan}.${"A".repeat(43)}=`));
  await step("set-active through a forged cookie", forged, (c) => c.multiSession.setActive({ sessionToken: tokens.dan }));
  await step("revoke ann (held, not active)", D, (c) => c.multiSession.revoke({ sessionToken: tokens.ann }));
  await step("get-session still bob", D, (c) => c.getSession());
  await step("revoke bob (active): the next held session", D, (c) => c.multiSession.revoke({ sessionToken: tokens.bob }));
  await step("get-session now cat", D, (c) => c.getSession());
  const again = await D.call(server, (c) => c.signIn.email({ email: `cat-${stamp}@example.com`, password: PASS }));
  known(again.data.token, "<token:cat2>");
  results.push({ name: "sign-in cat again", status: again.status, cookies: cookieShapes(again, labels) });
  await step("list after signing cat in again", D, (c) => c.multiSession.listDeviceSessions());
  // change-password's new session (revokeOtherSessions) gets a _multi- cookie too.
  const changed = await D.call(server, (c) => c.changePassword({ currentPassword: PASS, newPassword: `${PASS}-2`, revokeOtherSessions: true }));
  known(changed.data.token, "<token:cat3>");
  results.push({ name: "change-password", status: changed.status, cookies: cookieShapes(changed, labels) });
  await step("list after change-password", D, (c) => c.multiSession.listDeviceSessions());
  const signedOut = device("S");
  await step("revoke without a session", signedOut, (c) => c.multiSession.revoke({ sessionToken: tokens.cat }));
  await step("sign-out", D, (c) => c.signOut());
  await step("get-session after sign-out", D, (c) => c.getSession());
  // Every session the browser held is over (probed with a session cookie signed here).
  const alive = {};
  for (const [who, t] of Object.entries({ ...tokens, cat2: again.data.token, cat3: changed.data.token })) {
    const probe = device(`probe-${who}`);
    probe.cookies.set("better-auth.session_token", encodeURIComponent(`${t}.${createHmac("sha256", SECRET).update(t).digest("base64")}`));
    alive[who] = (await probe.call(server, (c) => c.getSession())).data !== null;
  }
  return { results, alive, jarAfter: [...D.cookies.keys()] };
}

describe("multiSession(): sessiond and Better Auth answer the same", () => {
  const st = {};
  before(async () => {
    const [dba, dsd] = await Promise.all([createDatabase("multi_ba"), createDatabase("multi_sd")]);
    await migrateBetterAuth(dba.url, OPTIONS);
    st.ba = await startBetterAuth({ databaseUrl: dba.url, options: OPTIONS });
    st.sd = await startSessiond({ databaseUrl: dsd.url, options: OPTIONS });
  });
  after(async () => {
    await Promise.all([st.ba?.stop(), st.sd?.stop()]);
  });

  it("every step: statuses, codes, bodies and cookies", async () => {
    const stamp = Date.now().toString(36);
    const ba = await scenario(st.ba, `ba${stamp}`);
    const sd = await scenario(st.sd, `sd${stamp}`);
    assert.equal(ba.results.length, sd.results.length);
    for (let i = 0; i < ba.results.length; i++) {
      assert.deepStrictEqual(sd.results[i], ba.results[i], `step ${ba.results[i].name}`);
    }
    assert.deepStrictEqual(sd.jarAfter, ba.jarAfter);
    assert.deepStrictEqual(sd.alive, ba.alive);
    // The scenario means what it says (on Better Auth, so on both).
    const byName = Object.fromEntries(ba.results.map((r) => [r.name, r]));
    assert.equal(byName["set-active unknown"].error.code, "INVALID_SESSION_TOKEN");
    assert.equal(byName["revoke without a session"].error.status, 401);
    assert.equal(byName["get-session now cat"].data.session.token, "<token:cat>");
    assert.equal(byName["get-session after sign-out"].data, null);
    assert.deepStrictEqual(byName["list-device-sessions (three held; dan past the cap)"].order.length, 3);
    // dan's session was the active one when cat was set active: it is not held, so it lives on.
    assert.deepStrictEqual(ba.alive, { ann: false, bob: false, cat: false, dan: true, cat2: false, cat3: false });
    assert.deepStrictEqual(ba.jarAfter, []);
    assert.ok(byName["change-password"].cookies.some((c) => c.startsWith("better-auth.session_token_multi-<token:cat3>=<token:cat3>.<sig>")));
  });
});
