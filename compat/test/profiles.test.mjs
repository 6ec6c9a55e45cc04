// Better Auth configured as real apps are, beside sessiond configured the same way. Five
// profiles beyond the default one of the other files:
//
//   admin+fields     admin() + user.additionalFields (a required field with a default, a number)
//   uuid             advanced.database.generateId: "uuid"
//   serial           advanced.database.generateId: "serial"
//   cookies+secrets  advanced.cookies renamed (and an attribute) + BETTER_AUTH_SECRETS
//   tokens           bearer() + jwt() (test/tokens.test.mjs drives the bearer and the keys)
//
// Each runs the official-client comparison (lib/scenario.mjs: every step's outcome on sessiond
// equals Better Auth's, `user` and `session` key by key, plus the profile's own steps) and the
// sidecar checks both ways on a schema made by either side (lib/sidecar.mjs: both servers'
// answers for one session agree key by key). Then, with both servers on one database:
//
//   - ban: Better Auth's admin API bans a user → sign-in on sessiond is 403 BANNED_USER, the
//     user's cached session on sessiond is refused within a second; unban → sign-in works;
//   - rotation: sessions and caches made under `1:old` stay signed in on sessiond under
//     `2:new,1:old` and are re-signed with `new`, and are refused under `2:new` alone (Better Auth
//     signs everyone out on rotation: asserted as the expected difference);
//   - a database with an unknown NOT NULL column: sessiond refuses to start, naming it.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { createDatabase, migrateSessiond, startBetterAuth, startSessiond } from "../lib/harness.mjs";
import { Device, cookieNames } from "../lib/client.mjs";
import { compareClients, clientTests } from "../lib/scenario.mjs";
import { MIGRATIONS, sidecarVariant, ok, plain, refusedWithin, startPair } from "../lib/sidecar.mjs";
import { tokenSteps } from "../lib/tokens.mjs";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// a number the database assigned, answered as a string
const NUMBER = /^[1-9][0-9]*$/;
const USER_FIELDS = {
  plan: { type: "string", required: true, defaultValue: "free" },
  credits: { type: "number", required: false },
};
const OLD = "compat-rotation-old-6Qm2Zr8Tn4Vb7Xc1Lk9Pd3Hs5Jf0WgA";
const NEW = "compat-rotation-new-Ea4Ky7Rb2Nq8Ut5Mz1Cv6Ph3Sd9Lx0B";
const COOKIES = {
  session_token: { name: "app_session" },
  session_data: { name: "app_session_cache" },
  dont_remember: { name: "app_forget_me", attributes: { sameSite: "strict" } },
};
const BANNED_MESSAGE = "You have been banned from this application. Please contact support if you believe this is an error.";

/** The official client's steps of the admin+fields profile (lib/scenario.mjs runs them on both servers). */
async function adminFieldSteps({ step, device, ok: okRes, err, A, stamp, PASS1 }) {
  const fresh = { query: { disableCookieCache: true } };
  await step("getSession admin and user fields (A)", A, (c) => c.getSession(fresh), (res) => {
    okRes(res);
    const u = res.data.user;
    assert.deepStrictEqual({ role: u.role, banned: u.banned, banReason: u.banReason, banExpires: u.banExpires, plan: u.plan, credits: u.credits },
      { role: "user", banned: false, banReason: null, banExpires: null, plan: "free", credits: null });
    assert.equal(res.data.session.impersonatedBy, null);
  });
  await step("updateUser plan, credits (A)", A, (c) => c.updateUser({ plan: "pro", credits: 7 }), okRes);
  await step("getSession after updateUser plan, credits (A)", A, (c) => c.getSession(fresh), (res) => {
    okRes(res);
    assert.equal(res.data.user.plan, "pro");
    assert.equal(res.data.user.credits, 7);
  });
  // input: false fields: a client cannot make itself an admin or lift a ban
  await step("updateUser role:admin → 400", A, (c) => c.updateUser({ role: "admin" }), err(400, "FIELD_NOT_ALLOWED"));
  await step("updateUser banned:true → 400", A, (c) => c.updateUser({ banned: true }), err(400, "FIELD_NOT_ALLOWED"));
  await step("getSession after refused updates (A)", A, (c) => c.getSession(fresh), (res) => {
    okRes(res);
    assert.equal(res.data.user.role, "user");
    assert.equal(res.data.user.banned, false);
  });
  await step("signUp.email role:admin → 400", device("R"),
    (c) => c.signUp.email({ name: "Rex", email: `rex-${stamp}@example.com`, password: PASS1, role: "admin" }), err(400, "FIELD_NOT_ALLOWED"));
  // banned has a default: a value sent at sign-up is replaced by it
  await step("signUp.email banned:true, plan:pro → banned false", device("S"),
    (c) => c.signUp.email({ name: "Sue", email: `sue-${stamp}@example.com`, password: PASS1, banned: true, plan: "pro" }), (res) => {
      okRes(res);
      assert.equal(res.data.user.banned, false);
      assert.equal(res.data.user.plan, "pro");
    });
}

/** The uuid and serial profiles' step: ids of the profile's kind on each side (the labels hide them from the comparison). */
const idSteps = (kind, pattern) => async ({ step, ok: okRes, A }) => {
  await step(`getSession ids are ${kind} (A)`, A, (c) => c.getSession({ query: { disableCookieCache: true } }), (res) => {
    okRes(res);
    idCheck(pattern)(res.data);
  });
};

/** A get-session answer's ids are of the kind `pattern` matches, and the session is its user's. */
const idCheck = (pattern) => (d) => {
  assert.match(d.user.id, pattern);
  assert.match(d.session.id, pattern);
  assert.equal(d.session.userId, d.user.id);
};

const PROFILES = [
  {
    key: "admin+fields",
    options: { theme: true, admin: true, userFields: USER_FIELDS },
    cache: "compact",
    client: { signUpFields: { credits: 5 }, steps: adminFieldSteps },
    sidecar: {
      signUpFields: { credits: 5 },
      check(d) {
        const u = d.user;
        assert.deepStrictEqual({ role: u.role, banned: u.banned, banReason: u.banReason, banExpires: u.banExpires, plan: u.plan, credits: u.credits },
          { role: "user", banned: false, banReason: null, banExpires: null, plan: "free", credits: 5 });
        assert.equal(d.session.impersonatedBy, null);
      },
      updateUserFields: { plan: "pro", credits: 7 },
    },
  },
  {
    key: "uuid",
    options: { theme: true, generateId: "uuid" },
    cache: "jwt",
    client: { steps: idSteps("UUIDs", UUID) },
    sidecar: { check: idCheck(UUID) },
  },
  {
    key: "serial",
    options: { theme: true, generateId: "serial" },
    cache: "compact",
    client: { steps: idSteps("numbers", NUMBER) },
    sidecar: { check: idCheck(NUMBER) },
  },
  {
    key: "cookies+secrets",
    options: { theme: true, cookies: COOKIES, secrets: `2:${NEW},1:${OLD}` },
    cache: "jwe",
    // the devices know only the renamed cookies: a server setting others fails every check
    client: {},
    sidecar: {},
  },
  {
    // bearer() and jwt(): nothing of the cookie scenario changes; the jwks table is shared
    key: "tokens",
    options: { theme: true, bearer: true, jwt: true },
    cache: "jwt",
    client: { steps: tokenSteps },
    sidecar: {},
  },
];
const profile = (key) => PROFILES.find((p) => p.key === key);

// ---------------------------------------------------------------------------------------------
// The official client, per profile (at the top level: the steps are known once they have run)
// ---------------------------------------------------------------------------------------------

for (const p of PROFILES) {
  const runs = await compareClients({
    options: p.options, strategies: [null, p.cache], profile: p.client, label: `client_${p.key}`,
  });
  clientTests(runs, `client, ${p.key}`);
}

// ---------------------------------------------------------------------------------------------
// Sidecar, ban, rotation, NOT NULL
// ---------------------------------------------------------------------------------------------

const get = (server, dev, query) => dev.call(server, (c) => c.getSession(query ? { query } : undefined));
const fresh = { disableCookieCache: true };
const PASS = "profiles-password-1";
const stampOf = () => `${Date.now()}${randomBytes(3).toString("hex")}`;

/** The value of the signed cookie `name` among Set-Cookie lines, as sent: "<value>.<signature>". */
function setCookieValue(lines, name) {
  const line = lines.find((l) => l.startsWith(`${name}=`));
  return line ? decodeURIComponent(line.slice(name.length + 1).split(";")[0]) : null;
}

/** Whether a signed cookie value ("<value>.<base64 HMAC-SHA256>") is signed with `secret`. */
function signedWith(signed, secret) {
  const dot = signed.lastIndexOf(".");
  return dot > 0 && createHmac("sha256", secret).update(signed.slice(0, dot)).digest("base64") === signed.slice(dot + 1);
}

function banTests() {
  const p = profile("admin+fields");
  describe("[ban, admin+fields] Better Auth's admin API bans a user of sessiond", { concurrency: false }, () => {
    const st = {};
    before(async () => {
      st.db = await createDatabase("profiles_ban");
      await MIGRATIONS[0].migrate(st.db, {}, p.options);
      [st.ba, st.sd] = await startPair(st.db.url, { ...p.options, cache: p.cache });
      const stamp = stampOf();
      // the admin: made on Better Auth, promoted in the database, then signed in afresh (its cookie
      // cache would still say "user")
      const adminEmail = `admin-${stamp}@example.com`;
      ok(await new Device("a0").call(st.ba, (c) => c.signUp.email({ name: "Admin", email: adminEmail, password: PASS })), "admin sign-up");
      await st.db.query(`update "user" set "role" = 'admin' where "email" = $1`, [adminEmail]);
      st.admin = new Device("admin");
      st.adminId = ok(await st.admin.call(st.ba, (c) => c.signIn.email({ email: adminEmail, password: PASS })), "admin sign-in").user.id;
      // the user: a session made by sessiond (cached there) and one made by Better Auth
      st.email = `banned-${stamp}@example.com`;
      st.v1 = new Device("v1");
      st.userId = ok(await st.v1.call(st.sd, (c) => c.signUp.email({ name: "Ban Me", email: st.email, password: PASS })), "sign-up").user.id;
      assert.ok(ok(await get(st.sd, st.v1)), "the user's session on sessiond");
      st.v2 = new Device("v2");
      ok(await st.v2.call(st.ba, (c) => c.signIn.email({ email: st.email, password: PASS })), "sign-in on Better Auth");
    });
    after(async () => {
      await Promise.all([st.ba?.stop(), st.sd?.stop()]);
      await st.db?.drop();
    });
    const admin = (path, body) => st.admin.call(st.ba, (c) => c.$fetch(path, { method: "POST", body }));
    const signIn = (server) => new Device("s").call(server, (c) => c.signIn.email({ email: st.email, password: PASS }));

    it("an impersonated session: both show impersonatedBy, and both leave it out of list-sessions", async () => {
      await st.db.query(`update "session" set "impersonatedBy" = $1 where "token" = $2`, [st.adminId, st.v2.token()]);
      const sd = ok(await get(st.sd, st.v2.clone(), fresh));
      assert.equal(sd?.session.impersonatedBy, st.adminId);
      assert.deepStrictEqual(plain(sd), plain(ok(await get(st.ba, st.v2.clone(), fresh))), "the same session on both");
      for (const server of [st.ba, st.sd]) {
        const l = ok(await st.v1.call(server, (c) => c.listSessions()), `list-sessions on ${server.label}`);
        assert.deepStrictEqual(l.map((x) => x.token), [st.v1.token()], `list-sessions on ${server.label}`);
      }
    });

    it("ban-user on Better Auth ends the user's sessions: sessiond refuses the cached one within a second", async () => {
      const v1 = st.v1.clone();
      const r = ok(await admin("/admin/ban-user", { userId: st.userId, banReason: "spam" }), "ban-user");
      assert.equal(r.user.banned, true);
      assert.equal(await refusedWithin(() => get(st.sd, v1)), null, "sessiond still serves the banned user's cached session");
      assert.equal(ok(await get(st.sd, st.v2.clone(), fresh)), null, "the session made by Better Auth is gone");
    });

    it("sign-in on sessiond is 403 BANNED_USER, as on Better Auth", async () => {
      const [sd, ba] = [await signIn(st.sd), await signIn(st.ba)];
      assert.deepStrictEqual({ status: ba.error?.status, code: ba.error?.code, message: ba.error?.message },
        { status: 403, code: "BANNED_USER", message: BANNED_MESSAGE }, "Better Auth's answer");
      assert.deepStrictEqual({ status: sd.error?.status, code: sd.error?.code, message: sd.error?.message },
        { status: 403, code: "BANNED_USER", message: BANNED_MESSAGE }, "sessiond's answer");
      assert.deepStrictEqual(sd.setCookies, [], "sessiond set no cookie");
      const { rows } = await st.db.query(`select count(*)::int as n from "session" where "userId" = $1`, [st.userId]);
      assert.equal(rows[0].n, 0, "no session was made");
    });

    it("after unban-user on Better Auth, sign-in on sessiond works", async () => {
      const r = ok(await admin("/admin/unban-user", { userId: st.userId }), "unban-user");
      assert.equal(r.user.banned, false);
      const d = new Device("after");
      ok(await d.call(st.sd, (c) => c.signIn.email({ email: st.email, password: PASS })), "sign-in on sessiond");
      const s = ok(await get(st.sd, d, fresh));
      assert.deepStrictEqual({ banned: s.user.banned, banReason: s.user.banReason, banExpires: s.user.banExpires },
        { banned: false, banReason: null, banExpires: null });
      assert.deepStrictEqual(plain(ok(await get(st.ba, d, fresh))), plain(s), "Better Auth's answer for the same session");
    });

    it("a ban whose banExpires has passed: sign-in on sessiond works and lifts the ban, as on Better Auth", async () => {
      for (const server of [st.ba, st.sd]) {
        await st.db.query(`update "user" set "banned" = true, "banReason" = 'old', "banExpires" = now() - interval '1 minute' where "id" = $1`, [st.userId]);
        ok(await signIn(server), `sign-in on ${server.label}`);
        const { rows } = await st.db.query(`select "banned", "banReason", "banExpires" from "user" where "id" = $1`, [st.userId]);
        assert.deepStrictEqual(rows[0], { banned: false, banReason: null, banExpires: null }, `ban lifted by ${server.label}`);
      }
    });
  });
}

function rotationTests() {
  const p = profile("cookies+secrets");
  const names = cookieNames(p.options);
  for (const cache of [null, "compact", "jwt", "jwe"]) {
    describe(`[rotation, cookies+secrets, cache=${cache ?? "off"}] 1:old → 2:new,1:old → 2:new`, { concurrency: false }, () => {
      const st = {};
      const start = async (secrets) => {
        await Promise.all([st.ba?.stop(), st.sd?.stop()]);
        [st.ba, st.sd] = await startPair(st.db.url, { ...p.options, cache, secrets });
      };
      const rename = (name) => st.db.query(`update "user" set "name" = $1 where "id" = $2`, [name, st.userId]);
      before(async () => {
        st.db = await createDatabase(`profiles_rotation_${cache ?? "off"}`);
        await migrateSessiond(st.db.url, p.options);
        await start(`1:${OLD}`);
        // under 1:old: a session made by each side, and one without rememberMe (dont_remember)
        const email = `rotation-${stampOf()}@example.com`;
        st.bySd = new Device("bySd", names);
        st.userId = ok(await st.bySd.call(st.sd, (c) => c.signUp.email({ name: "Before", email, password: PASS })), "sign-up").user.id;
        st.byBa = new Device("byBa", names);
        ok(await st.byBa.call(st.ba, (c) => c.signIn.email({ email, password: PASS })), "sign-in on Better Auth");
        st.forget = new Device("forget", names);
        ok(await st.forget.call(st.sd, (c) => c.signIn.email({ email, password: PASS, rememberMe: false })), "sign-in rememberMe:false");
        st.devices = [st.bySd, st.byBa, st.forget];
        for (const d of st.devices) {
          assert.ok(signedWith(d.cookie("session_token").value, OLD), `${d.name}: session cookie signed with old`);
          if (cache) assert.ok(d.cookie("session_data"), `${d.name}: a cookie cache`);
        }
        st.old = st.devices.map((d) => d.clone());
        await start(`2:${NEW},1:${OLD}`);
      });
      after(async () => {
        await Promise.all([st.ba?.stop(), st.sd?.stop()]);
        await st.db?.drop();
      });

      it("under 2:new,1:old Better Auth signs the old cookies out (the expected difference)", async () => {
        for (const d of st.old) assert.equal(ok(await get(st.ba, d.clone())), null, `${d.name} on Better Auth`);
      });

      it(`under 2:new,1:old sessiond keeps the old ${cache ? "cookies and caches" : "cookies"} and re-signs them with new`, async () => {
        // a name the caches do not hold: a cache made under an old version is not served as
        // it is but checked against the store (whose answer says "After") and re-issued
        await rename("After");
        for (const d of st.devices) {
          const before = d.log.length;
          const s = ok(await get(st.sd, d), `${d.name} on sessiond`);
          assert.ok(s, `${d.name}: signed in`);
          if (cache) assert.equal(s.user.name, "After", `${d.name}: an old-version cache is checked against the store`);
          const lines = d.log.slice(before).flatMap((e) => e.setCookies);
          const token = setCookieValue(lines, names.session_token);
          assert.ok(token && signedWith(token, NEW), `${d.name}: session cookie re-signed with new: ${token}`);
          if (cache) assert.ok(lines.some((l) => l.startsWith(`${names.session_data}=`) || l.startsWith(`${names.session_data}.0=`)), `${d.name}: cache re-issued`);
          if (d.name === "forget") {
            const flag = setCookieValue(lines, names.dont_remember);
            assert.ok(flag && signedWith(flag, NEW), `dont_remember re-signed with new: ${flag}`);
            // re-signing must not make a rememberMe:false session outlive the browser
            const line = lines.find((l) => l.startsWith(`${names.session_token}=`));
            assert.doesNotMatch(line, /;\s*(max-age|expires)=/i, "the re-signed session cookie stays a browser-session cookie");
          }
        }
      });

      it("under 2:new,1:old the re-signed cookies work on Better Auth", async () => {
        for (const d of st.devices) {
          const s = ok(await get(st.ba, d.clone(), fresh), `${d.name} on Better Auth`);
          assert.equal(s?.user.id, st.userId, `${d.name}: signed in on Better Auth`);
        }
      });

      it("under 2:new alone sessiond refuses the old cookies and caches, and keeps the re-signed ones", async () => {
        await start(`2:${NEW}`);
        for (const d of st.old) assert.equal(ok(await get(st.sd, d.clone())), null, `${d.name}'s old cookies on sessiond`);
        await rename("Later");
        for (const d of st.devices) {
          const s = ok(await get(st.sd, d.clone()), `${d.name} on sessiond`);
          assert.equal(s?.user.id, st.userId, `${d.name}: signed in`);
          // (a cache minted before this sessiond process started is checked against the store
          // once, as with immediate revocation after any restart: so the name says "Later")
          assert.ok(ok(await get(st.ba, d.clone(), fresh)), `${d.name} on Better Auth`);
        }
      });
    });
  }
}

function notNullTests() {
  describe("[schema] a database with a column sessiond does not know", { concurrency: false }, () => {
    let db;
    before(async () => {
      db = await createDatabase("profiles_not_null");
      await migrateSessiond(db.url, { theme: true });
    });
    after(async () => {
      await db?.drop();
    });
    const start = () => startSessiond({ databaseUrl: db.url, options: { theme: true }, extraEnv: { SESSIOND_DATABASE__MIGRATE_ON_START: "false" } });

    /** Starts a server expected to refuse; returns its error (exit status and output). */
    const refusal = async (startServer, what) => {
      let server;
      try {
        server = await startServer();
      } catch (e) {
        assert.equal(typeof e.exitCode, "number", `${what} did not exit: ${e.message}`);
        return e;
      }
      await server.stop();
      return assert.fail(`${what} started on a database where every sign-up would fail`);
    };
    const namesIt = (e) => e.log.split("\n").some((l) => /\buser\b/.test(l) && /\btenant\b/.test(l));

    it("an unknown NOT NULL column without a default: sessiond refuses to start, naming it (as Better Auth refuses)", async () => {
      await db.query(`alter table "user" add column "tenant" text not null`);
      try {
        // Better Auth 1.7.25 checks the schema at its first request: SchemaMismatchError
        const ba = await refusal(() => startBetterAuth({ databaseUrl: db.url, options: { theme: true } }), "Better Auth");
        assert.ok(namesIt(ba), `Better Auth's output does not name user.tenant:\n${ba.log}`);
        const sd = await refusal(start, "sessiond");
        assert.notEqual(sd.exitCode, 0);
        assert.ok(namesIt(sd), `no line of sessiond's output names the table "user" and the column "tenant":\n${sd.log}`);
      } finally {
        await db.query(`alter table "user" drop column if exists "tenant"`);
      }
    });

    // Better Auth's rule too: a column is in the way only when it is NOT NULL without a default
    it("an unknown nullable column, or a NOT NULL one with a default, does not stop it", async () => {
      await db.query(`alter table "user" add column "nickname" text, add column "tenant" text not null default 'acme'`);
      const server = await start();
      try {
        const d = new Device("d");
        ok(await d.call(server, (c) => c.signUp.email({ name: "Col", email: `col-${stampOf()}@example.com`, password: PASS })), "sign-up");
        assert.ok(ok(await get(server, d, fresh)), "signed in");
        const { rows } = await db.query(`select "tenant" from "user"`);
        assert.deepStrictEqual(rows, [{ tenant: "acme" }]);
      } finally {
        await server.stop();
      }
    });
  });
}

describe("[profiles]", { concurrency: 2 }, () => {
  for (const p of PROFILES) {
    for (const migration of MIGRATIONS) {
      // without a cache once: on the other schema the cache's checks read the store too
      const caches = migration === MIGRATIONS[0] ? [null, p.cache] : [p.cache];
      sidecarVariant({
        title: `[sidecar, ${p.key}, ${migration.name}]`, options: p.options, caches, migration, profile: p.sidecar,
      });
    }
  }
  banTests();
  rotationTests();
  notNullTests();
});
