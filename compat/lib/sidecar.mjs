// Sidecar mode, as a library for the test files: sessiond and the real Better Auth on the same
// PostgreSQL database with the same secret, every check run in both directions ("maker" makes
// the session, "other" uses it, then the roles swap), with Better Auth's official client and one
// cookie jar per device shared by both servers, as a browser shares cookies between the ports of
// one host.
//
// `sidecarVariant` registers one database (its schema made by one side's migrator), a server
// pair per cache mode, and the checks of both directions. test/sidecar.test.mjs runs it over the
// session options and storages; test/profiles.test.mjs over Better Auth's plugin profiles.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  createDatabase, migrateBetterAuth, migrateSessiond, startBetterAuth, startSessiond, schemaOf,
  betterAuthPending, sessiondSupports,
} from "./harness.mjs";
import { Device, cookieNames } from "./client.mjs";

const PASS1 = "sidecar-password-1";
const PASS2 = "sidecar-password-2";
const DAY = 86400_000;
const HAS_IMMEDIATE_REVOCATION = sessiondSupports("SESSIOND_SESSION__COOKIE_CACHE__IMMEDIATE_REVOCATION");

/** Where the schema comes from: Better Auth's migrator (sessiond adopts it) or `sessiond migrate`. */
export const MIGRATIONS = [
  {
    name: "schema by Better Auth",
    async migrate(db, t, options) {
      await migrateBetterAuth(db.url, options);
      const before = await schemaOf(db);
      await migrateSessiond(db.url, options);
      t.schemaChange = { before, after: await schemaOf(db) };
    },
  },
  {
    name: "schema by sessiond",
    async migrate(db, t, options) {
      await migrateSessiond(db.url, options);
      t.baPending = await betterAuthPending(db.url, options);
    },
  },
];

export const ok = (res, what = "call") => {
  assert.equal(res.error, null, `${what}: unexpected error ${JSON.stringify(res.error)}`);
  return res.data;
};
// the client revives ISO dates in responses as Date objects
export const iso = (v) => (v instanceof Date ? v.toISOString() : v);
const near = (v, target, tolMs, what) => {
  const t = Date.parse(iso(v));
  assert.ok(Math.abs(t - target) < tolMs, `${what}: ${iso(v)} is not within ${tolMs / 1000}s of ${new Date(target).toISOString()}`);
};

/** A record as JSON values (dates as ISO strings, keys sorted), for comparing two servers' answers. */
export function plain(v) {
  if (v instanceof Date) return v.toISOString();
  if (Array.isArray(v)) return v.map(plain);
  if (v === null || typeof v !== "object") return v;
  return Object.fromEntries(Object.keys(v).sort().map((k) => [k, plain(v[k])]));
}

/** The same keys and values in `user` and `session` of two get-session answers for one session. */
export function sameSession(got, want, what) {
  assert.ok(got && want, `${what}: both servers returned a session`);
  assert.deepStrictEqual(plain(got.user), plain(want.user), `${what}: user differs`);
  assert.deepStrictEqual(plain(got.session), plain(want.session), `${what}: session differs`);
}

/**
 * Direct access to where sessions live, to make a session due for refresh or to change what the
 * store holds behind a cookie cache: PostgreSQL rows, or Better Auth's Redis layout (key
 * `<token>` → `{"session": …, "user": …}`, list `active-sessions-<userId>`).
 */
export function sqlStore(db) {
  return {
    async renameUser(userId, _token, name) {
      await db.query(`update "user" set "name" = $1 where "id" = $2`, [name, userId]);
    },
    async expireIn(token, seconds) {
      await db.query(`update "session" set "expiresAt" = now() + make_interval(secs => $2) where "token" = $1`, [token, seconds]);
    },
    async expiresAt(token) {
      const { rows } = await db.query(`select "expiresAt" from "session" where "token" = $1`, [token]);
      return rows[0]?.expiresAt.toISOString() ?? null;
    },
    async exists(token) {
      const { rows } = await db.query(`select count(*)::int as n from "session" where "token" = $1`, [token]);
      return rows[0].n > 0;
    },
    async close() {},
  };
}

export async function redisStore(url) {
  const { default: Redis } = await import("ioredis");
  const redis = new Redis(url, { maxRetriesPerRequest: 2 });
  const users = new Set();
  const edit = async (token, f) => {
    const v = JSON.parse(await redis.get(token));
    f(v);
    await redis.set(token, JSON.stringify(v), "KEEPTTL");
  };
  return {
    users,
    // the user is copied into each session's value: change it where get-session reads it
    renameUser: (_userId, token, name) => edit(token, (v) => { v.user.name = name; }),
    expireIn: (token, seconds) => edit(token, (v) => { v.session.expiresAt = new Date(Date.now() + seconds * 1000).toISOString(); }),
    async expiresAt(token) {
      const v = await redis.get(token);
      return v ? new Date(JSON.parse(v).session.expiresAt).toISOString() : null;
    },
    exists: async (token) => (await redis.exists(token)) === 1,
    /** Deletes what this run's users left in Redis (their sessions would live 7 days). */
    async close() {
      for (const uid of users) {
        const list = await redis.get(`active-sessions-${uid}`);
        for (const e of list ? JSON.parse(list) : []) await redis.del(e.token);
        // sessiond's marker after revoke-sessions (caches minted before it are refused)
        await redis.del(`active-sessions-${uid}`, `revoked-sessions-before-${uid}`);
      }
      redis.disconnect();
    },
  };
}

/**
 * The checks of one direction; `ctx` gives the servers, the database, the variant and the
 * profile: { signUpFields, check(getSessionData), updateUserFields } (extra fields sent at
 * sign-up, assertions on the new session, fields update-user sets).
 */
function directionChecks(ctx, makerKey, otherKey) {
  const s = {}; // state shared by the checks of this direction
  const M = () => ctx[makerKey];
  const O = () => ctx[otherKey];
  const profile = ctx.profile;
  const device = (name) => new Device(name, ctx.names);
  const get = (server, dev, query) => dev.call(server, (c) => c.getSession(query ? { query } : undefined));
  const fresh = { disableCookieCache: true };
  const title = (check) => `${makerKey} makes, ${otherKey} uses: ${check}`;
  // both servers read the session from the store: the same user and session, key by key
  const agree = async (dev, what) => {
    const m = ok(await get(M(), dev, fresh), `get-session on maker (${what})`);
    const o = ok(await get(O(), dev, fresh), `get-session on other (${what})`);
    sameSession(o, m, what);
    return m;
  };

  it(title("a session signed up on one is accepted by the other"), async () => {
    s.stamp = `${makerKey}${Date.now()}${randomBytes(3).toString("hex")}`;
    s.email = `sidecar-${s.stamp}@example.com`;
    s.d1 = device("d1");
    const up = ok(await s.d1.call(M(), (c) => c.signUp.email({
      name: "Side Car", email: s.email, password: PASS1, ...profile.signUpFields,
    })), "sign-up");
    assert.equal(up.token, s.d1.token());
    if (ctx.cache) assert.ok(s.d1.cookie("session_data"), "sign-up set a cookie cache");
    else assert.equal(s.d1.cookie("session_data"), null, "no cookie cache without the cache");
    const onOther = ok(await get(O(), s.d1), "get-session on other");
    assert.ok(onOther, "other returned a session");
    assert.equal(onOther.session.token, up.token);
    assert.equal(onOther.user.email, s.email);
    assert.equal(onOther.user.id, up.user.id);
    const onMaker = ok(await get(M(), s.d1, fresh), "get-session on maker");
    // with a cache, the other answered from the maker's cookie: it holds what the store holds
    sameSession(onOther, onMaker, "the other's answer and the maker's");
    profile.check?.(onMaker);
    s.userId = up.user.id;
    ctx.store.users?.add(s.userId);
  });

  it(title(ctx.cache ? `the ${ctx.cache} cookie cache of each is read by the other` : "every get-session reads the store"),
    async () => {
      await ctx.store.renameUser(s.userId, s.d1.token(), "Renamed In DB");
      if (!ctx.cache) {
        assert.equal(ok(await get(O(), s.d1)).user.name, "Renamed In DB");
        assert.equal(ok(await get(M(), s.d1)).user.name, "Renamed In DB");
        return;
      }
      // d1 holds the maker's cache (from sign-up): the other serves it without the database
      const cached = ok(await get(O(), s.d1), "cached get-session on other");
      assert.equal(cached.user.name, "Side Car", "other answered from the maker's cookie cache");
      // from the database, the other re-issues the cache: now the maker must read the other's
      const direct = ok(await get(O(), s.d1, fresh), "uncached get-session on other");
      assert.equal(direct.user.name, "Renamed In DB");
      assert.ok(s.d1.cookie("session_data"), "other issued a cookie cache");
      await ctx.store.renameUser(s.userId, s.d1.token(), "Renamed Again");
      const back = ok(await get(M(), s.d1), "cached get-session on maker");
      assert.equal(back.user.name, "Renamed In DB", "maker answered from the other's cookie cache");
      sameSession(back, direct, "the maker's answer from the other's cache and the other's");
      assert.equal(ok(await get(M(), s.d1, fresh)).user.name, "Renamed Again");
    });

  it(title("sessions made by one are listed by both"), async () => {
    s.d2 = device("d2");
    ok(await s.d2.call(M(), (c) => c.signIn.email({ email: s.email, password: PASS1 })), "sign-in");
    const lo = ok(await s.d1.call(O(), (c) => c.listSessions()), "list on other");
    const lm = ok(await s.d1.call(M(), (c) => c.listSessions()), "list on maker");
    const byId = (l) => plain(l).sort((a, b) => (a.id < b.id ? -1 : 1));
    assert.deepEqual(new Set(lo.map((x) => x.token)), new Set([s.d1.token(), s.d2.token()]));
    assert.deepStrictEqual(byId(lo), byId(lm), "list-sessions differs");
  });

  it(title("a session due for refresh is refreshed by the other, and the maker sees the new expiry"),
    async () => {
      await ctx.store.expireIn(s.d1.token(), 3600);
      const before = s.d1.log.length;
      const r = ok(await get(O(), s.d1, fresh), "get-session on other");
      near(r.session.expiresAt, Date.now() + 7 * DAY, 60_000, "refreshed expiresAt");
      const lines = s.d1.log.slice(before).flatMap((e) => e.setCookies);
      const tokenCookie = lines.find((l) => l.startsWith(`${ctx.names.session_token}=`));
      assert.ok(tokenCookie, "other re-issued the session cookie");
      assert.match(tokenCookie, /Max-Age=604800/);
      assert.equal(await ctx.store.expiresAt(s.d1.token()), iso(r.session.expiresAt), "stored session updated");
      const m = ok(await get(M(), s.d1, fresh), "get-session on maker");
      sameSession(m, r, "the maker's answer and the other's refreshed one");
    });

  it(title("the maker's rememberMe:false flag is honoured by the other (no refresh)"), async () => {
    s.d3 = device("d3");
    ok(await s.d3.call(M(), (c) => c.signIn.email({ email: s.email, password: PASS1, rememberMe: false })), "sign-in");
    assert.ok(s.d3.cookie("dont_remember"), "dont_remember cookie set");
    await ctx.store.expireIn(s.d3.token(), 3600);
    const r = ok(await get(O(), s.d3, fresh), "get-session on other");
    assert.ok(r, "session accepted");
    near(r.session.expiresAt, Date.now() + 3600_000, 60_000, "expiresAt not slid");
  });

  it(title("update-session on the other is seen by the maker"), async () => {
    const u = ok(await s.d1.call(O(), (c) => c.updateSession({ theme: `theme-${otherKey}` })), "update-session");
    assert.equal(u.session.theme, `theme-${otherKey}`);
    const m = await agree(s.d1, "after update-session");
    assert.equal(m.session.theme, `theme-${otherKey}`);
    assert.deepStrictEqual(plain(u.session), plain(m.session), "update-session's answer and the maker's get-session");
  });

  it(title("update-user on the other is seen by the maker"), async () => {
    const fields = { name: `Updated By ${otherKey}`, ...profile.updateUserFields };
    ok(await s.d1.call(O(), (c) => c.updateUser(fields)), "update-user");
    const m = await agree(s.d1, "after update-user");
    for (const [k, v] of Object.entries(fields)) assert.deepStrictEqual(m.user[k], v, `user.${k}`);
  });

  it(title("revoke-session on the other ends the maker's session"), async () => {
    const d2old = s.d2.clone();
    ok(await s.d1.call(O(), (c) => c.revokeSession({ token: s.d2.token() })), "revoke-session");
    assert.equal(ok(await get(M(), d2old, fresh)), null, "revoked on the maker");
    const l = ok(await s.d1.call(M(), (c) => c.listSessions()));
    assert.ok(!l.some((x) => x.token === d2old.token()), "no longer listed");
  });

  it(title("change-password on the other; the maker signs in with the new password only"), async () => {
    const r = ok(await s.d1.call(O(), (c) => c.changePassword({ currentPassword: PASS1, newPassword: PASS2 })), "change-password");
    assert.equal(r.user.email, s.email);
    const m = await agree(s.d1, "after change-password");
    assert.deepStrictEqual(plain(r.user), plain(m.user), "change-password's user and the maker's get-session");
    const bad = await device("x").call(M(), (c) => c.signIn.email({ email: s.email, password: PASS1 }));
    assert.equal(bad.error?.status, 401);
    s.d4 = device("d4");
    ok(await s.d4.call(M(), (c) => c.signIn.email({ email: s.email, password: PASS2 })), "sign-in with the new password");
  });

  it(title("revoke-other-sessions on the other ends the maker's other sessions"), async () => {
    const d4old = s.d4.clone();
    ok(await s.d1.call(O(), (c) => c.revokeOtherSessions()), "revoke-other-sessions");
    assert.equal(ok(await get(M(), d4old, fresh)), null, "d4 revoked");
    assert.ok(ok(await get(M(), s.d1, fresh)), "d1 kept");
  });

  it(title("revoke-sessions on the other ends every session"), async () => {
    s.d5 = device("d5");
    ok(await s.d5.call(M(), (c) => c.signIn.email({ email: s.email, password: PASS2 })), "sign-in");
    const d5old = s.d5.clone();
    ok(await s.d5.call(O(), (c) => c.revokeSessions()), "revoke-sessions");
    assert.equal(ok(await get(M(), s.d1, fresh)), null, "d1 revoked");
    assert.equal(ok(await get(M(), d5old, fresh)), null, "d5 revoked");
    assert.equal(s.d5.token(), null, "the caller's cookie was cleared");
  });

  it(title("sign-out on the other ends the maker's session"), async () => {
    s.d6 = device("d6");
    ok(await s.d6.call(M(), (c) => c.signIn.email({ email: s.email, password: PASS2 })), "sign-in");
    const d6old = s.d6.clone();
    assert.deepEqual(ok(await s.d6.call(O(), (c) => c.signOut())), { success: true });
    assert.equal(ok(await get(M(), d6old, fresh)), null);
    assert.equal(await ctx.store.exists(d6old.token()), false, "deleted from the store");
  });

  const immediate = makerKey === "sessiond" && HAS_IMMEDIATE_REVOCATION;
  // Only with a cookie cache: without one there is nothing to serve a revoked session from.
  if (ctx.cache) it(title(immediate
    ? "a cached session revoked by the other is refused by sessiond at once (immediate revocation)"
    : "a cached session revoked by the other is still served from the cache until max_age (Better Auth's semantics)"),
  async () => {
    const d7 = device("d7");
    const d8 = device("d8");
    ok(await d7.call(M(), (c) => c.signIn.email({ email: s.email, password: PASS2 })), "sign-in d7");
    ok(await d8.call(M(), (c) => c.signIn.email({ email: s.email, password: PASS2 })), "sign-in d8");
    assert.ok(ok(await get(M(), d7)), "d7 served");
    ok(await d8.call(O(), (c) => c.revokeSession({ token: d7.token() })), "revoke-session on other");
    if (immediate) {
      assert.equal(await refusedWithin(() => get(M(), d7.clone())), null,
        "sessiond still serves the revoked session from its cache");
    } else {
      const r = ok(await get(M(), d7.clone()));
      assert.ok(r?.session, "served from the cookie cache");
    }
    assert.equal(ok(await get(M(), d7.clone(), fresh)), null, "gone from the database");
  });
}

/**
 * Asks for a session until it is refused, for at most a second (sessiond learns of sessions
 * ended by Better Auth through PostgreSQL NOTIFY); returns the last answer's data.
 */
export async function refusedWithin(getSession, ms = 1000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const last = ok(await getSession());
    if (last === null || Date.now() > deadline) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Better Auth and sessiond on one migrated database (sessiond does not migrate: the schema is
 * the one a side's migrator made), with the same options; resolves [betterAuth, sessiond].
 */
export function startPair(databaseUrl, options) {
  return Promise.all([
    startBetterAuth({ databaseUrl, options }),
    startSessiond({ databaseUrl, options, extraEnv: { SESSIOND_DATABASE__MIGRATE_ON_START: "false" } }),
  ]);
}

/**
 * One database, its schema made by `migration`, a server pair per cache mode, and the checks of
 * both directions. `options`: the harness's options for both servers; `profile`: what the
 * checks send and expect beyond the default schema (see directionChecks).
 */
export function sidecarVariant({ title, options, caches, storage = { name: "postgres" }, migration, profile = {} }) {
  // its checks depend on each other: one at a time (the parent's concurrency is inherited)
  describe(title, { concurrency: false }, () => {
    const t = {};
    let db;
    before(async () => {
      db = await createDatabase(`sidecar_${migration.name}`);
      await migration.migrate(db, t, options);
    });
    after(async () => {
      await db?.drop();
    });

    if (migration.name === "schema by Better Auth") {
      it("sessiond migrate adopts Better Auth's schema without changing it", () => {
        assert.ok(t.schemaChange, "migrated");
        assert.deepStrictEqual(t.schemaChange.after, t.schemaChange.before);
        assert.ok(t.schemaChange.before.columns.length >= 30, "Better Auth created its tables");
      });
    } else {
      it("Better Auth's migrator finds nothing to add to sessiond's schema", () => {
        assert.ok(t.baPending, "checked");
        assert.deepStrictEqual({ toBeCreated: t.baPending.toBeCreated, toBeAdded: t.baPending.toBeAdded },
          { toBeCreated: [], toBeAdded: [] }, `Better Auth would run: ${t.baPending.sql}`);
      });
    }

    for (const cache of caches) {
      describe(`cache=${cache ?? "off"}`, () => {
        const ctx = { cache, storage, profile, names: cookieNames(options) };
        before(async () => {
          ctx.db = db;
          ctx.store = storage.redisUrl ? await redisStore(storage.redisUrl) : sqlStore(db);
          [ctx["better-auth"], ctx.sessiond] = await startPair(db.url, { ...options, cache, redisUrl: storage.redisUrl });
        });
        after(async () => {
          await Promise.all([ctx["better-auth"]?.stop(), ctx.sessiond?.stop()]);
          await ctx.store?.close();
        });
        directionChecks(ctx, "better-auth", "sessiond");
        directionChecks(ctx, "sessiond", "better-auth");
      });
    }
  });
}
