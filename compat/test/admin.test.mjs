// Better Auth's admin() plugin beside sessiond's plugins.admin (its session routes):
//
//   - the official client with adminClient() on both servers (each on its own database), with
//     no cookie cache and with the compact one: an admin (role set in the database), plain users
//     and a second admin; every route's happy path and refusals (no session, not an admin,
//     unknown user, ban yourself, impersonate an admin, stop when not impersonating, bad
//     bodies); every step's status, error code and message, body (ids, tokens and dates as
//     labels) and Set-Cookie lines (admin_session included) compared;
//   - one database for both (sidecar), both ways, with and without the cookie cache: an
//     impersonation started on one side is seen on the other (get-session shows impersonatedBy)
//     and stopped there; a ban by either side ends the user's sessions on both (sessiond refuses
//     a ban it made at once, one made by Better Auth within a second).

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { adminClient } from "better-auth/client/plugins";
import { createDatabase, migrateBetterAuth, startBetterAuth, startSessiond } from "../lib/harness.mjs";
import { Device } from "../lib/client.mjs";
import { clientTests, recorder } from "../lib/scenario.mjs";
import { MIGRATIONS, ok, plain, refusedWithin, startPair } from "../lib/sidecar.mjs";

const PASS = "admin-password-1";
const ADMIN = { admin: true };
const fresh = { query: { disableCookieCache: true } };

/** A device whose client has adminClient(). */
function adminDevice(name) {
  const d = new Device(name);
  d.plugins = [adminClient()];
  return d;
}

async function scenario(server, db, stamp) {
  const { roles, results, problems, step, ok: okRes, err } = recorder(server);
  const noSession = (res) => {
    okRes(res);
    assert.equal(res.data, null, "expected no session");
  };
  const emails = {};
  for (const who of ["max", "zoe", "ada", "bob"]) {
    emails[who] = `${who}-${stamp}@example.com`;
    roles.add(emails[who], `<email:${who}>`);
  }
  const signUp = (dev, who, name) => step(`signUp.email ${who} (${dev.name})`, dev, (c) => c.signUp.email({ name, email: emails[who], password: PASS }), okRes);
  const signIn = (dev, who) => step(`signIn.email ${who} (${dev.name})`, dev, (c) => c.signIn.email({ email: emails[who], password: PASS }), okRes);

  // the admin: signed up, made an admin in the database, signed in afresh (a cache would say "user")
  await signUp(adminDevice("M0"), "max", "Max");
  await db.query(`update "user" set "role" = 'admin' where "email" = $1`, [emails.max]);
  const M = adminDevice("M");
  const adminId = (await signIn(M, "max")).data?.user.id;
  const Z = adminDevice("Z");
  await signUp(Z, "zoe", "Zoe");
  const U = adminDevice("U");
  const ada = (await signUp(U, "ada", "Ada")).data?.user.id;
  const U2 = adminDevice("U2");
  await signIn(U2, "ada");
  const O = adminDevice("O");
  const bob = (await signUp(O, "bob", "Bob")).data?.user.id;
  const anon = adminDevice("anon");
  const zoe = (await step("getSession zoe (Z)", Z, (c) => c.getSession(fresh), okRes)).data?.user.id;
  await step("getSession ada second device (U2)", U2, (c) => c.getSession(fresh), okRes);
  await step("getSession admin (M)", M, (c) => c.getSession(fresh), (res) => {
    okRes(res);
    assert.equal(res.data.user.role, "admin");
  });
  const unknown = "no-such-user-id";

  // list-user-sessions
  await step("listUserSessions ada (M)", M, (c) => c.admin.listUserSessions({ userId: ada }), (res) => {
    okRes(res);
    assert.equal(res.data.sessions.length, 2);
  });
  await step("listUserSessions not an admin (U) → 403", U, (c) => c.admin.listUserSessions({ userId: ada }),
    err(403, "YOU_ARE_NOT_ALLOWED_TO_LIST_USERS_SESSIONS"));
  await step("listUserSessions without cookie → 401", anon, (c) => c.admin.listUserSessions({ userId: ada }), err(401));
  await step("listUserSessions unknown user (M)", M, (c) => c.admin.listUserSessions({ userId: unknown }), (res) => {
    okRes(res);
    assert.deepEqual(res.data.sessions, []);
  });
  await step("listUserSessions no userId (M)", M, (c) => c.$fetch("/admin/list-user-sessions", { method: "POST", body: {} }));
  await step("listUserSessions userId a number (M)", M, (c) => c.$fetch("/admin/list-user-sessions", { method: "POST", body: { userId: 42 } }));

  // set-role
  await step("setRole not an admin (U) → 403", U, (c) => c.admin.setRole({ userId: ada, role: "admin" }),
    err(403, "YOU_ARE_NOT_ALLOWED_TO_CHANGE_USERS_ROLE"));
  await step("setRole without cookie → 401", anon, (c) => c.admin.setRole({ userId: ada, role: "admin" }), err(401));
  await step("setRole unknown user (M) → 404", M, (c) => c.admin.setRole({ userId: unknown, role: "user" }), err(404, "USER_NOT_FOUND"));
  await step("setRole no role (M) → 400", M, (c) => c.$fetch("/admin/set-role", { method: "POST", body: { userId: bob } }), err(400));
  await step("setRole role a number (M) → 400", M, (c) => c.$fetch("/admin/set-role", { method: "POST", body: { userId: bob, role: 7 } }), err(400));
  await step("setRole zoe admin (M)", M, (c) => c.admin.setRole({ userId: zoe, role: "admin" }), (res) => {
    okRes(res);
    assert.equal(res.data.user.role, "admin");
  });
  await step("setRole bob [user, editor] (M)", M, (c) => c.admin.setRole({ userId: bob, role: ["user", "editor"] }), (res) => {
    okRes(res);
    assert.equal(res.data.user.role, "user,editor");
  });
  await step("setRole bob user (M)", M, (c) => c.admin.setRole({ userId: bob, role: "user" }), okRes);

  // ban-user, unban-user
  await step("banUser not an admin (U) → 403", U, (c) => c.admin.banUser({ userId: bob }), err(403, "YOU_ARE_NOT_ALLOWED_TO_BAN_USERS"));
  await step("banUser without cookie → 401", anon, (c) => c.admin.banUser({ userId: bob }), err(401));
  await step("banUser unknown user (M) → 404", M, (c) => c.admin.banUser({ userId: unknown }), err(404, "USER_NOT_FOUND"));
  await step("banUser yourself (M) → 400", M, (c) => c.admin.banUser({ userId: adminId }), err(400, "YOU_CANNOT_BAN_YOURSELF"));
  await step("banUser banExpiresIn a string (M) → 400", M, (c) => c.admin.banUser({ userId: bob, banExpiresIn: "1d" }), err(400));
  await step("banUser banReason a number (M) → 400", M, (c) => c.admin.banUser({ userId: bob, banReason: 5 }), err(400));
  const oCached = O.clone("O-cached");
  await step("banUser bob, reason, a day (M)", M, (c) => c.admin.banUser({ userId: bob, banReason: "spam", banExpiresIn: 86400 }), (res) => {
    okRes(res);
    assert.equal(res.data.user.banned, true);
    assert.equal(res.data.user.banReason, "spam");
  });
  await step("getSession banned user, disableCookieCache (O)", O, (c) => c.getSession(fresh), noSession);
  await step("getSession banned user, cookie cache (O)", oCached, (c) => c.getSession());
  await step("signIn.email banned user → 403", anon, (c) => c.signIn.email({ email: emails.bob, password: PASS }), err(403, "BANNED_USER"));
  await step("banUser bob again, defaults (M)", M, (c) => c.admin.banUser({ userId: bob }), (res) => {
    okRes(res);
    assert.equal(res.data.user.banReason, "No reason");
    assert.equal(res.data.user.banExpires, null);
  });
  await step("unbanUser not an admin (U) → 403", U, (c) => c.admin.unbanUser({ userId: bob }), err(403, "YOU_ARE_NOT_ALLOWED_TO_BAN_USERS"));
  await step("unbanUser unknown user (M) → 404", M, (c) => c.admin.unbanUser({ userId: unknown }), err(404, "USER_NOT_FOUND"));
  await step("unbanUser bob (M)", M, (c) => c.admin.unbanUser({ userId: bob }), (res) => {
    okRes(res);
    assert.equal(res.data.user.banned, false);
  });
  await step("unbanUser bob, not banned (M)", M, (c) => c.admin.unbanUser({ userId: bob }), okRes);
  await signIn(O, "bob");

  // impersonate-user, stop-impersonating
  const Zn = adminDevice("Zn");
  await signIn(Zn, "zoe");
  await step("impersonateUser not an admin (U) → 403", U, (c) => c.admin.impersonateUser({ userId: bob }),
    err(403, "YOU_ARE_NOT_ALLOWED_TO_IMPERSONATE_USERS"));
  await step("impersonateUser without cookie → 401", anon, (c) => c.admin.impersonateUser({ userId: bob }), err(401));
  await step("impersonateUser unknown user (M) → 404", M, (c) => c.admin.impersonateUser({ userId: unknown }), err(404, "USER_NOT_FOUND"));
  await step("impersonateUser an admin (M → zoe) → 403", M, (c) => c.admin.impersonateUser({ userId: zoe }),
    err(403, "YOU_CANNOT_IMPERSONATE_ADMINS"));
  await step("stopImpersonating not impersonating (M) → 400", M, (c) => c.admin.stopImpersonating(), err(400));
  await step("stopImpersonating without cookie → 401", anon, (c) => c.admin.stopImpersonating(), err(401));
  const adminCookies = M.clone("M-admin");
  // admin_session's value: "<admin token>:<dont_remember or empty>"
  roles.add(`${M.token()}:`, "<token:M>:");
  M.name = "M-imp";
  await step("impersonateUser bob (M)", M, (c) => c.admin.impersonateUser({ userId: bob }), (res) => {
    okRes(res);
    assert.equal(res.data.session.impersonatedBy, adminId);
    assert.equal(res.data.user.id, bob);
    assert.ok(M.cookies.has("better-auth.admin_session"), "admin_session cookie");
  });
  const impersonation = M.clone("M-imp-stale");
  await step("getSession impersonating (M)", M, (c) => c.getSession(), (res) => {
    okRes(res);
    assert.equal(res.data.user.id, bob);
    assert.equal(res.data.session.impersonatedBy, adminId);
  });
  await step("getSession impersonating, disableCookieCache (M)", M, (c) => c.getSession(fresh), okRes);
  await step("listSessions impersonating: the impersonation left out (M)", M, (c) => c.listSessions(), (res) => {
    okRes(res);
    assert.equal(res.data.length, 1);
  });
  await step("listUserSessions bob, the impersonation included (Zn)", Zn, (c) => c.admin.listUserSessions({ userId: bob }), (res) => {
    okRes(res);
    assert.equal(res.data.sessions.length, 2);
  });
  await step("listUserSessions as the impersonated user (M) → 403", M, (c) => c.admin.listUserSessions({ userId: bob }), err(403));
  await step("impersonateUser while impersonating (M) → 403", M, (c) => c.admin.impersonateUser({ userId: ada }), err(403));
  await step("stopImpersonating without admin_session (M) → 500", impersonation.clone("M-no-admin").keepOnly("session_token", "session_data"),
    (c) => c.admin.stopImpersonating(), err(500));
  M.name = "M";
  await step("stopImpersonating (M)", M, (c) => c.admin.stopImpersonating(), (res) => {
    okRes(res);
    assert.equal(res.data.user.id, adminId);
    assert.equal(res.data.session.token, adminCookies.token());
    assert.equal(M.cookies.has("better-auth.admin_session"), false, "admin_session cleared");
  });
  await step("getSession after stopImpersonating (M)", M, (c) => c.getSession(fresh), (res) => {
    okRes(res);
    assert.equal(res.data.user.id, adminId);
  });
  await step("getSession the ended impersonation, disableCookieCache", impersonation, (c) => c.getSession(fresh), noSession);

  // revoke-user-session, revoke-user-sessions
  await step("revokeUserSession not an admin (U) → 403", U, (c) => c.admin.revokeUserSession({ sessionToken: U2.token() }),
    err(403, "YOU_ARE_NOT_ALLOWED_TO_REVOKE_USERS_SESSIONS"));
  await step("revokeUserSession without cookie → 401", anon, (c) => c.admin.revokeUserSession({ sessionToken: U2.token() }), err(401));
  await step("revokeUserSession no sessionToken (M) → 400", M, (c) => c.$fetch("/admin/revoke-user-session", { method: "POST", body: {} }), err(400));
  await step("revokeUserSession ada's second (M)", M, (c) => c.admin.revokeUserSession({ sessionToken: U2.token() }), okRes);
  await step("getSession revoked, disableCookieCache (U2)", U2, (c) => c.getSession(fresh), noSession);
  await step("revokeUserSession unknown token (M)", M, (c) => c.admin.revokeUserSession({ sessionToken: "no-such-token" }), okRes);
  await step("revokeUserSessions not an admin (U) → 403", U, (c) => c.admin.revokeUserSessions({ userId: bob }),
    err(403, "YOU_ARE_NOT_ALLOWED_TO_REVOKE_USERS_SESSIONS"));
  await step("revokeUserSessions without cookie → 401", anon, (c) => c.admin.revokeUserSessions({ userId: ada }), err(401));
  await step("revokeUserSessions ada (M)", M, (c) => c.admin.revokeUserSessions({ userId: ada }), okRes);
  await step("getSession after revokeUserSessions, disableCookieCache (U)", U, (c) => c.getSession(fresh), noSession);
  await step("revokeUserSessions unknown user (M)", M, (c) => c.admin.revokeUserSessions({ userId: unknown }), okRes);
  await step("revokeUserSessions yourself (M)", M.clone("M-self"), (c) => c.admin.revokeUserSessions({ userId: adminId }), okRes);
  await step("getSession after revoking your own sessions (M)", M, (c) => c.getSession(fresh), noSession);
  return { results, problems };
}

// The admin routes' 401 without a session: Better Auth's body has neither code nor message,
// sessiond's says {"code":"UNAUTHORIZED","message":"Unauthorized"} as on its other routes (README,
// compatibility table). Asserted as that difference, the rest of the outcome compared.
const UNAUTHORIZED_STEP = /without cookie → 401$/;
function allowedUnauthorized(got, ref) {
  assert.deepStrictEqual({ code: ref.error?.code, message: ref.error?.message }, { code: null, message: null }, "Better Auth's 401");
  assert.deepStrictEqual({ code: got?.error?.code, message: got?.error?.message }, { code: "UNAUTHORIZED", message: "Unauthorized" }, "sessiond's 401");
  return { ...got, error: { ...got.error, code: null, message: null } };
}

async function compareAdmin(cache) {
  const dbs = [];
  const servers = [];
  try {
    const [baDb, sdDb] = [await createDatabase(`admin_ba_${cache ?? "off"}`), await createDatabase(`admin_sd_${cache ?? "off"}`)];
    dbs.push(baDb, sdDb);
    await migrateBetterAuth(baDb.url, ADMIN);
    // Better Auth's cache semantics on both sides (sessiond's immediate revocation off)
    const o = { ...ADMIN, cache, immediateRevocation: false };
    const [ba, sd] = await Promise.all([
      startBetterAuth({ databaseUrl: baDb.url, options: o }),
      startSessiond({ databaseUrl: sdDb.url, options: o }),
    ]);
    servers.push(ba, sd);
    const stamp = `${cache ?? "nocache"}${Date.now()}${randomBytes(2).toString("hex")}`;
    const [baRun, sdRun] = await Promise.all([scenario(ba, baDb, stamp), scenario(sd, sdDb, stamp)]);
    return { ba: baRun, sd: sdRun };
  } catch (e) {
    for (const s of servers) console.error(`--- ${s.label} log ---\n${s.logTail(20)}`);
    return { error: e };
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    for (const db of dbs) await db.drop();
  }
}

const runs = [];
for (const cache of [null, "compact"]) runs.push({ strategy: cache, ...(await compareAdmin(cache)) });
clientTests(runs, "admin, client", (name, got, ref) => (UNAUTHORIZED_STEP.test(name) ? allowedUnauthorized(got, ref) : got));

// ---------------------------------------------------------------------------------------------
// Sidecar: one database, both ways
// ---------------------------------------------------------------------------------------------

const get = (server, dev, query) => dev.call(server, (c) => c.getSession(query ? { query } : undefined));
const noCache = { disableCookieCache: true };

for (const cache of [null, "compact"]) {
  describe(`[admin, sidecar, cache=${cache ?? "off"}]`, { concurrency: false }, () => {
    const st = {};
    before(async () => {
      st.db = await createDatabase(`admin_sidecar_${cache ?? "off"}`);
      await MIGRATIONS[0].migrate(st.db, {}, ADMIN);
      [st.ba, st.sd] = await startPair(st.db.url, { ...ADMIN, cache });
    });
    after(async () => {
      await Promise.all([st.ba?.stop(), st.sd?.stop()]);
      await st.db?.drop();
    });
    const stamp = () => `${Date.now()}${randomBytes(3).toString("hex")}`;

    /** An admin signed in on `server` (role set in the database) and a user signed up on `other`. */
    async function people(server, other) {
      const s = stamp();
      const adminEmail = `admin-${s}@example.com`;
      ok(await adminDevice("a0").call(server, (c) => c.signUp.email({ name: "Admin", email: adminEmail, password: PASS })), "admin sign-up");
      await st.db.query(`update "user" set "role" = 'admin' where "email" = $1`, [adminEmail]);
      const admin = adminDevice("admin");
      const adminId = ok(await admin.call(server, (c) => c.signIn.email({ email: adminEmail, password: PASS })), "admin sign-in").user.id;
      const email = `user-${s}@example.com`;
      const user = adminDevice("user");
      const userId = ok(await user.call(other, (c) => c.signUp.email({ name: "User", email, password: PASS })), "user sign-up").user.id;
      return { admin, adminId, user, userId, email };
    }

    for (const [makerKey, otherKey] of [["ba", "sd"], ["sd", "ba"]]) {
      const label = (k) => (k === "ba" ? "Better Auth" : "sessiond");
      it(`an impersonation started on ${label(makerKey)} is seen and stopped on ${label(otherKey)}`, async () => {
        const [maker, other] = [st[makerKey], st[otherKey]];
        const p = await people(maker, other);
        const adminToken = p.admin.token();
        const imp = ok(await p.admin.call(maker, (c) => c.admin.impersonateUser({ userId: p.userId })), "impersonate-user");
        assert.equal(imp.session.impersonatedBy, p.adminId);
        const seen = ok(await get(other, p.admin.clone()), `get-session on ${label(otherKey)}`);
        assert.equal(seen?.user.id, p.userId);
        assert.equal(seen.session.impersonatedBy, p.adminId);
        assert.deepStrictEqual(plain(ok(await get(other, p.admin.clone(), noCache))), plain(ok(await get(maker, p.admin.clone(), noCache))),
          "the same impersonation on both");
        const stale = p.admin.clone("stale");
        const back = ok(await p.admin.call(other, (c) => c.admin.stopImpersonating()), `stop-impersonating on ${label(otherKey)}`);
        assert.equal(back.user.id, p.adminId);
        assert.equal(back.session.token, adminToken);
        assert.equal(p.admin.cookies.has("better-auth.admin_session"), false, "admin_session cleared");
        for (const server of [maker, other]) {
          assert.equal(ok(await get(server, p.admin.clone(), noCache))?.user.id, p.adminId, `the admin again on ${server.label}`);
          assert.equal(ok(await get(server, stale.clone(), noCache)), null, `the impersonation ended on ${server.label}`);
        }
      });

      it(`a ban by ${label(makerKey)} ends the user's sessions on both`, async () => {
        const [maker, other] = [st[makerKey], st[otherKey]];
        const p = await people(maker, other);
        // a session made by each side; each read once (cached where a cache is on)
        const onMaker = adminDevice("onMaker");
        ok(await onMaker.call(maker, (c) => c.signIn.email({ email: p.email, password: PASS })), "sign-in on the maker");
        for (const [server, dev] of [[other, p.user], [maker, onMaker]]) {
          assert.ok(ok(await get(server, dev)), `signed in on ${server.label}`);
          assert.ok(ok(await get(st.sd, dev.clone())), "signed in on sessiond");
        }
        const r = ok(await p.admin.call(maker, (c) => c.admin.banUser({ userId: p.userId })), "ban-user");
        assert.equal(r.user.banned, true);
        for (const dev of [p.user, onMaker]) {
          for (const server of [st.ba, st.sd]) {
            assert.equal(ok(await get(server, dev.clone(), noCache)), null, `${dev.name} on ${server.label}, disableCookieCache`);
          }
          // with its cookie cache: sessiond refuses a ban it made at once, one Better Auth made
          // within a second; Better Auth serves its cache until it expires (not asserted)
          if (makerKey === "sd") assert.equal(ok(await get(st.sd, dev.clone())), null, `${dev.name} on sessiond at once`);
          else assert.equal(await refusedWithin(() => get(st.sd, dev.clone())), null, `${dev.name} on sessiond within a second`);
        }
        for (const server of [st.ba, st.sd]) {
          const s = await adminDevice("s").call(server, (c) => c.signIn.email({ email: p.email, password: PASS }));
          assert.equal(s.error?.code, "BANNED_USER", `sign-in on ${server.label}`);
        }
      });
    }
  });
}
