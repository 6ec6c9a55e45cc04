// Sidecar mode: sessiond and the real Better Auth on the same PostgreSQL database with the same
// secret. A session made by either is accepted, listed, refreshed and revoked by the other, with
// no cookie cache and with each cache strategy (compact, jwt, jwe), on a schema made by Better
// Auth's migrator (which sessiond adopts) and on one made by `sessiond migrate` (on which Better
// Auth runs; its migrator must find nothing to add).
//
// Every check runs in both directions: "maker" makes the session, "other" uses it, then the
// roles swap. Both servers are driven with Better Auth's official client; one cookie jar per
// device is shared by both servers, as a browser shares cookies between ports of one host.
//
// Storage variants: `STORAGES` below. A Redis-shared variant (both sides with REDIS_URL as
// secondary storage) is enabled with COMPAT_REDIS_URL=redis://127.0.0.1:6379 once sessiond
// supports it; the checks that edit the store directly then edit Better Auth's Redis values.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  createDatabase, migrateBetterAuth, migrateSessiond, startBetterAuth, startSessiond, schemaOf, runNode,
  sessiondSupports,
} from "../lib/harness.mjs";
import { Device } from "../lib/client.mjs";

const CACHES = [null, "compact", "jwt", "jwe"];
const STORAGES = [
  { name: "postgres" },
  ...(process.env.COMPAT_REDIS_URL ? [{ name: "postgres+redis", redisUrl: process.env.COMPAT_REDIS_URL }] : []),
];
const BASE_OPTIONS = { theme: true };
const PASS1 = "sidecar-password-1";
const PASS2 = "sidecar-password-2";
const DAY = 86400_000;
const HAS_IMMEDIATE_REVOCATION = sessiondSupports("SESSIOND_SESSION__COOKIE_CACHE__IMMEDIATE_REVOCATION");

const MIGRATIONS = [
  {
    name: "schema by Better Auth",
    async migrate(db, t) {
      await migrateBetterAuth(db.url, BASE_OPTIONS);
      const before = await schemaOf(db);
      await migrateSessiond(db.url, BASE_OPTIONS);
      t.schemaChange = { before, after: await schemaOf(db) };
    },
  },
  {
    name: "schema by sessiond",
    async migrate(db, t) {
      await migrateSessiond(db.url, BASE_OPTIONS);
      const r = await runNode(["compat/lib/ba-schema.mjs"], { env: { DATABASE_URL: db.url, THEME_FIELD: "1" } });
      if (r.code !== 0) throw new Error(`ba-schema.mjs failed (${r.code}):\n${r.stderr}`);
      t.baPending = JSON.parse(r.stdout.trim().split("\n").pop());
      t.baWarnings = r.stderr.trim();
    },
  },
];

const ok = (res, what = "call") => {
  assert.equal(res.error, null, `${what}: unexpected error ${JSON.stringify(res.error)}`);
  return res.data;
};
// the client revives ISO dates in responses as Date objects
const iso = (v) => (v instanceof Date ? v.toISOString() : v);
const near = (v, target, tolMs, what) => {
  const t = Date.parse(iso(v));
  assert.ok(Math.abs(t - target) < tolMs, `${what}: ${iso(v)} is not within ${tolMs / 1000}s of ${new Date(target).toISOString()}`);
};

/**
 * Direct access to where sessions live, to make a session due for refresh or to change what the
 * store holds behind a cookie cache: PostgreSQL rows, or Better Auth's Redis layout (key
 * `<token>` → `{"session": …, "user": …}`, list `active-sessions-<userId>`).
 */
function sqlStore(db) {
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

async function redisStore(url) {
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

/** The checks of one direction; `ctx` gives the servers, the database and the variant. */
function directionChecks(ctx, makerKey, otherKey) {
  const s = {}; // state shared by the checks of this direction
  const M = () => ctx[makerKey];
  const O = () => ctx[otherKey];
  const get = (server, dev, query) => dev.call(server, (c) => c.getSession(query ? { query } : undefined));
  const fresh = { disableCookieCache: true };
  const title = (check) => `${makerKey} makes, ${otherKey} uses: ${check}`;

  it(title("a session signed up on one is accepted by the other"), async () => {
    s.stamp = `${makerKey}${Date.now()}${randomBytes(3).toString("hex")}`;
    s.email = `sidecar-${s.stamp}@example.com`;
    s.d1 = new Device("d1");
    const up = ok(await s.d1.call(M(), (c) => c.signUp.email({ name: "Side Car", email: s.email, password: PASS1 })), "sign-up");
    assert.equal(up.token, s.d1.token());
    if (ctx.cache) assert.ok(s.d1.cookie(".session_data"), "sign-up set a cookie cache");
    else assert.equal(s.d1.cookie(".session_data"), null, "no cookie cache without the cache");
    const onOther = ok(await get(O(), s.d1), "get-session on other");
    assert.ok(onOther, "other returned a session");
    assert.equal(onOther.session.token, up.token);
    assert.equal(onOther.user.email, s.email);
    assert.equal(onOther.user.id, up.user.id);
    const onMaker = ok(await get(M(), s.d1, fresh), "get-session on maker");
    assert.equal(onOther.session.id, onMaker.session.id);
    assert.equal(iso(onOther.session.expiresAt), iso(onMaker.session.expiresAt));
    assert.equal(iso(onOther.session.createdAt), iso(onMaker.session.createdAt));
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
      assert.ok(s.d1.cookie(".session_data"), "other issued a cookie cache");
      await ctx.store.renameUser(s.userId, s.d1.token(), "Renamed Again");
      const back = ok(await get(M(), s.d1), "cached get-session on maker");
      assert.equal(back.user.name, "Renamed In DB", "maker answered from the other's cookie cache");
      assert.equal(ok(await get(M(), s.d1, fresh)).user.name, "Renamed Again");
    });

  it(title("sessions made by one are listed by both"), async () => {
    s.d2 = new Device("d2");
    ok(await s.d2.call(M(), (c) => c.signIn.email({ email: s.email, password: PASS1 })), "sign-in");
    const lo = ok(await s.d1.call(O(), (c) => c.listSessions()), "list on other");
    const lm = ok(await s.d1.call(M(), (c) => c.listSessions()), "list on maker");
    const key = (l) => l.map((x) => `${x.id} ${x.token} ${iso(x.expiresAt)} ${iso(x.createdAt)} ${x.userId}`).sort();
    assert.deepEqual(new Set(lo.map((x) => x.token)), new Set([s.d1.token(), s.d2.token()]));
    assert.deepEqual(key(lo), key(lm));
  });

  it(title("a session due for refresh is refreshed by the other, and the maker sees the new expiry"),
    async () => {
      await ctx.store.expireIn(s.d1.token(), 3600);
      const before = s.d1.log.length;
      const r = ok(await get(O(), s.d1, fresh), "get-session on other");
      near(r.session.expiresAt, Date.now() + 7 * DAY, 60_000, "refreshed expiresAt");
      const lines = s.d1.log.slice(before).flatMap((e) => e.setCookies);
      const tokenCookie = lines.find((l) => /\.session_token=/.test(l));
      assert.ok(tokenCookie, "other re-issued the session cookie");
      assert.match(tokenCookie, /Max-Age=604800/);
      assert.equal(await ctx.store.expiresAt(s.d1.token()), iso(r.session.expiresAt), "stored session updated");
      const m = ok(await get(M(), s.d1, fresh), "get-session on maker");
      assert.equal(iso(m.session.expiresAt), iso(r.session.expiresAt));
    });

  it(title("the maker's rememberMe:false flag is honoured by the other (no refresh)"), async () => {
    s.d3 = new Device("d3");
    ok(await s.d3.call(M(), (c) => c.signIn.email({ email: s.email, password: PASS1, rememberMe: false })), "sign-in");
    assert.ok(s.d3.cookie(".dont_remember"), "dont_remember cookie set");
    await ctx.store.expireIn(s.d3.token(), 3600);
    const r = ok(await get(O(), s.d3, fresh), "get-session on other");
    assert.ok(r, "session accepted");
    near(r.session.expiresAt, Date.now() + 3600_000, 60_000, "expiresAt not slid");
  });

  it(title("update-session on the other is seen by the maker"), async () => {
    const u = ok(await s.d1.call(O(), (c) => c.updateSession({ theme: `theme-${otherKey}` })), "update-session");
    assert.equal(u.session.theme, `theme-${otherKey}`);
    assert.equal(ok(await get(M(), s.d1, fresh)).session.theme, `theme-${otherKey}`);
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
    const bad = await new Device("x").call(M(), (c) => c.signIn.email({ email: s.email, password: PASS1 }));
    assert.equal(bad.error?.status, 401);
    s.d4 = new Device("d4");
    ok(await s.d4.call(M(), (c) => c.signIn.email({ email: s.email, password: PASS2 })), "sign-in with the new password");
  });

  it(title("revoke-other-sessions on the other ends the maker's other sessions"), async () => {
    const d4old = s.d4.clone();
    ok(await s.d1.call(O(), (c) => c.revokeOtherSessions()), "revoke-other-sessions");
    assert.equal(ok(await get(M(), d4old, fresh)), null, "d4 revoked");
    assert.ok(ok(await get(M(), s.d1, fresh)), "d1 kept");
  });

  it(title("revoke-sessions on the other ends every session"), async () => {
    s.d5 = new Device("d5");
    ok(await s.d5.call(M(), (c) => c.signIn.email({ email: s.email, password: PASS2 })), "sign-in");
    const d5old = s.d5.clone();
    ok(await s.d5.call(O(), (c) => c.revokeSessions()), "revoke-sessions");
    assert.equal(ok(await get(M(), s.d1, fresh)), null, "d1 revoked");
    assert.equal(ok(await get(M(), d5old, fresh)), null, "d5 revoked");
    assert.equal(s.d5.token(), null, "the caller's cookie was cleared");
  });

  it(title("sign-out on the other ends the maker's session"), async () => {
    s.d6 = new Device("d6");
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
    const d7 = new Device("d7");
    const d8 = new Device("d8");
    ok(await d7.call(M(), (c) => c.signIn.email({ email: s.email, password: PASS2 })), "sign-in d7");
    ok(await d8.call(M(), (c) => c.signIn.email({ email: s.email, password: PASS2 })), "sign-in d8");
    assert.ok(ok(await get(M(), d7)), "d7 served");
    ok(await d8.call(O(), (c) => c.revokeSession({ token: d7.token() })), "revoke-session on other");
    if (immediate) {
      // the announcement travels through PostgreSQL NOTIFY: allow it a second
      let last;
      for (let i = 0; i < 20; i++) {
        last = ok(await get(M(), d7.clone()));
        if (last === null) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(last, null, "sessiond still serves the revoked session from its cache");
    } else {
      const r = ok(await get(M(), d7.clone()));
      assert.ok(r?.session, "served from the cookie cache");
    }
    assert.equal(ok(await get(M(), d7.clone(), fresh)), null, "gone from the database");
  });
}

/** One storage × schema variant: a database, its migration, a server pair per cache strategy. */
function variant(storage, migration) {
  // its checks depend on each other: one at a time (the parent's concurrency is inherited)
  describe(`[sidecar, ${storage.name}, ${migration.name}]`, { concurrency: false }, () => {
    const t = {};
    let db;
    before(async () => {
      db = await createDatabase(`sidecar_${migration.name}`);
      await migration.migrate(db, t);
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

    for (const cache of CACHES) {
      describe(`cache=${cache ?? "off"}`, () => {
        const ctx = { cache, storage };
        before(async () => {
          ctx.db = db;
          ctx.store = storage.redisUrl ? await redisStore(storage.redisUrl) : sqlStore(db);
          const options = { ...BASE_OPTIONS, cache, redisUrl: storage.redisUrl };
          [ctx["better-auth"], ctx.sessiond] = await Promise.all([
            startBetterAuth({ databaseUrl: db.url, options }),
            // migrations were applied above, by one side or the other
            startSessiond({ databaseUrl: db.url, options, extraEnv: { SESSIOND_DATABASE__MIGRATE_ON_START: "false" } }),
          ]);
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

// the variants share nothing but the PostgreSQL server: two at a time
describe("[sidecar]", { concurrency: 2 }, () => {
  for (const storage of STORAGES) for (const migration of MIGRATIONS) variant(storage, migration);
});
