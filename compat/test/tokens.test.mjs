// Better Auth's bearer() and jwt() plugins beside sessiond's plugins.bearer and plugins.jwt (the
// "tokens" profile; its cookie scenario and sidecar checks run in test/profiles.test.mjs):
//
//   - the official client with `fetchOptions.auth: { type: "Bearer" }` and no cookie on both
//     servers (each on its own database): sign-up and sign-in hand out `set-auth-token`,
//     get-session, list-sessions, token, jwks, revoke-session and sign-out run on the bearer
//     alone; a bad bearer next to a good cookie; every step's outcome compared, `set-auth-jwt`
//     and the token's header and claims included (times, kid and sid by form only);
//   - jose's createRemoteJWKSet + jwtVerify: each server's tokens verify with its own key set;
//   - one database for both (sidecar): the key the first /jwks call makes (on Better Auth in one
//     run, on sessiond in the other) signs the other's tokens too, each verifies with the other's
//     key set, and a bearer handed out by one is a session on the other.

import { describe, it, before, after, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createRemoteJWKSet, jwtVerify, decodeProtectedHeader } from "jose";
import { createDatabase, migrateBetterAuth, startBetterAuth, startSessiond } from "../lib/harness.mjs";
import { Device, Roles } from "../lib/client.mjs";
import { MIGRATIONS, ok, plain, startPair } from "../lib/sidecar.mjs";
import { BearerDevice, bearerOf, bearerOutcome, jwksShape, jwtShape } from "../lib/tokens.mjs";

const TOKENS = { bearer: true, jwt: true };
const PASS = "tokens-password-1";

/** Verifies a JWT with a server's published key set; its iss and aud must be `issuer`'s base URL. */
async function verifyWith(server, jwt, issuer = server) {
  const keys = createRemoteJWKSet(new URL(`${server.api}/jwks`));
  return jwtVerify(jwt, keys, { issuer: issuer.baseURL, audience: issuer.baseURL });
}

/** The raw token a signed bearer value carries. */
const rawToken = (signed) => safeDecode(signed).split(".")[0];
const safeDecode = (v) => {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
};

async function bearerScenario(server, stamp) {
  const roles = new Roles();
  const results = new Map();
  const problems = [];
  const extra = {};
  const step = async (name, dev, fn, expect) => {
    const now = Date.now();
    const res = await dev.call(server, fn);
    const d = res.data;
    if (d?.user?.id) roles.add(d.user.id, `<user:${d.user.email?.split("-")[0] ?? "?"}>`);
    if (d?.session?.id) roles.add(d.session.id, `<session:${dev.name}>`);
    const signed = bearerOf(res);
    if (signed) roles.add(rawToken(signed), `<token:${dev.name}>`);
    if (d?.token && typeof d.token === "string" && !d.token.includes(".")) roles.add(d.token, `<token:${dev.name}>`);
    if (d?.session?.token) roles.add(d.session.token, `<token:${dev.name}>`);
    results.set(name, bearerOutcome(res, roles, server.baseURL, now));
    if (expect) {
      try {
        await expect(res);
      } catch (e) {
        problems.push(`${name}: ${e.message}`);
      }
    }
    return res;
  };
  const okRes = (res) => assert.equal(res.error, null, `unexpected error ${JSON.stringify(res.error)}`);
  const noSession = (res) => {
    okRes(res);
    assert.equal(res.data, null, "expected no session");
  };
  const email = `ada-${stamp}@example.com`;
  roles.add(email, "<email:ada>");
  const A = new BearerDevice("A");
  const B = new BearerDevice("B");

  await step("signUp.email hands out set-auth-token (A)", A, (c) => c.signUp.email({ name: "Ada", email, password: PASS }), (res) => {
    okRes(res);
    assert.ok(bearerOf(res), "set-auth-token");
    A.token = bearerOf(res);
  });
  await step("signIn.email hands out set-auth-token (B)", B, (c) => c.signIn.email({ email, password: PASS }), (res) => {
    okRes(res);
    assert.ok(bearerOf(res), "set-auth-token");
    B.token = bearerOf(res);
  });
  await step("signIn.email wrong password → 401, no set-auth-token", new BearerDevice("x"),
    (c) => c.signIn.email({ email, password: "wrong-password-1" }), (res) => {
      assert.equal(res.error?.status, 401);
      assert.equal(bearerOf(res), null);
    });
  await step("getSession with the bearer alone (A)", A, (c) => c.getSession(), async (res) => {
    okRes(res);
    assert.equal(res.headers.sentAuthorization, `Bearer ${A.token}`, "the client sent the bearer");
    assert.equal(res.data?.session.token, rawToken(A.token));
    assert.ok(res.headers.setAuthJwt, "set-auth-jwt");
    const { payload } = await verifyWith(server, res.headers.setAuthJwt);
    assert.equal(payload.sub, res.data.user.id);
  });
  await step("getSession disableCookieCache with the bearer (B)", B, (c) => c.getSession({ query: { disableCookieCache: true } }), (res) => {
    okRes(res);
    assert.equal(res.data?.session.token, rawToken(B.token));
  });
  await step("listSessions with the bearer (A)", A, (c) => c.listSessions(), (res) => {
    okRes(res);
    assert.deepStrictEqual(new Set(res.data.map((s) => s.token)), new Set([rawToken(A.token), rawToken(B.token)]));
  });
  await step("getSession with the bare token as bearer (A)", new BearerDevice("A-bare", rawToken(A.token)), (c) => c.getSession(), (res) => {
    okRes(res);
    assert.equal(res.data?.session.token, rawToken(A.token), "an unsigned token is accepted without require_signature");
  });
  await step("getSession with a bad signature → null", new BearerDevice("bad", `${rawToken(A.token)}.${"A".repeat(43)}=`),
    (c) => c.getSession(), noSession);
  await step("getSession with an unknown token → null", new BearerDevice("unknown", "no-such-session-token"), (c) => c.getSession(), noSession);
  await step("getSession with a bad bearer next to a good cookie (A)", Object.assign(new BearerDevice("mix", "bogus.c2lnbmF0dXJl"), {
    cookie: `better-auth.session_token=${A.token}`,
  }), (c) => c.getSession(), (res) => {
    okRes(res);
    assert.equal(res.data?.session.token, rawToken(A.token), "the cookie's session");
  });
  await step("token with the bearer (A)", A, async (c) => {
    const r = await c.token();
    extra.tokenA = r.data?.token;
    return { data: r.data ? { token: jwtShape(r.data.token, server.baseURL) } : null, error: r.error };
  }, async () => {
    assert.ok(extra.tokenA, "a JWT");
    const { payload, protectedHeader } = await verifyWith(server, extra.tokenA);
    assert.equal(payload.email, email);
    assert.equal(protectedHeader.alg, "EdDSA");
  });
  await step("token without a bearer → 401", new BearerDevice("anon"), (c) => c.token(), (res) => assert.equal(res.error?.status, 401));
  await step("jwks", new BearerDevice("anon2"), async (c) => {
    const r = await c.jwks();
    extra.jwks = r.data;
    return { data: r.data ? jwksShape(r.data) : null, error: r.error };
  }, () => {
    assert.equal(extra.jwks?.keys?.length, 1, "one key");
    assert.equal(extra.jwks.keys[0].kid, decodeProtectedHeader(extra.tokenA).kid, "the key of the token");
  });
  await step("revokeSession B with the bearer (A)", A, (c) => c.revokeSession({ token: rawToken(B.token) }), okRes);
  await step("getSession revoked bearer (B)", B, (c) => c.getSession({ query: { disableCookieCache: true } }), noSession);
  await step("signOut with the bearer (A)", A, (c) => c.signOut(), okRes);
  await step("getSession after signOut (A)", A, (c) => c.getSession({ query: { disableCookieCache: true } }), noSession);
  return { results, problems };
}

// ---------------------------------------------------------------------------------------------
// The official client with bearers, on both servers
// ---------------------------------------------------------------------------------------------

async function compareBearer() {
  const dbs = [];
  const servers = [];
  try {
    const [baDb, sdDb] = [await createDatabase("tokens_ba"), await createDatabase("tokens_sd")];
    dbs.push(baDb, sdDb);
    await migrateBetterAuth(baDb.url, TOKENS);
    const [ba, sd] = await Promise.all([
      startBetterAuth({ databaseUrl: baDb.url, options: TOKENS }),
      startSessiond({ databaseUrl: sdDb.url, options: TOKENS }),
    ]);
    servers.push(ba, sd);
    const stamp = `${Date.now()}${randomBytes(2).toString("hex")}`;
    const [baRun, sdRun] = await Promise.all([bearerScenario(ba, stamp), bearerScenario(sd, stamp)]);
    const jwks = await Promise.all([ba, sd].map((s) => fetch(`${s.api}/jwks`)));
    baRun.cacheControl = jwks[0].headers.get("cache-control");
    sdRun.cacheControl = jwks[1].headers.get("cache-control");
    return { ba: baRun, sd: sdRun };
  } catch (e) {
    for (const s of servers) console.error(`--- ${s.label} log ---\n${s.logTail(20)}`);
    return { error: e };
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    for (const db of dbs) await db.drop();
  }
}

const run = await compareBearer();
if (run.error) {
  test("[tokens, bearer client] setup", () => {
    throw run.error;
  });
} else {
  test("[tokens, bearer client] Better Auth meets the scenario's own expectations", () => assert.deepEqual(run.ba.problems, []));
  test("[tokens, bearer client] sessiond meets the scenario's own expectations", () => assert.deepEqual(run.sd.problems, []));
  for (const [name, ref] of run.ba.results) {
    test(`[tokens, bearer client] ${name}`, () => {
      assert.deepStrictEqual(run.sd.results.get(name), ref, `sessiond (actual) vs Better Auth (expected) differ for "${name}"`);
    });
  }
  // Cache-Control on /jwks is an allowed difference: each side's own, but each caches publicly
  test("[tokens] /jwks: Cache-Control (allowed to differ; recorded)", (t) => {
    t.diagnostic(`Better Auth: ${run.ba.cacheControl ?? "(none)"}; sessiond: ${run.sd.cacheControl ?? "(none)"}`);
    assert.notEqual(run.sd.cacheControl ?? "", "no-store", "sessiond's key set must be cacheable");
  });
}

// ---------------------------------------------------------------------------------------------
// One database: the key made by either side signs for both
// ---------------------------------------------------------------------------------------------

for (const first of ["Better Auth", "sessiond"]) {
  describe(`[tokens, sidecar] the first /jwks call on ${first} makes the key both use`, { concurrency: false }, () => {
    const st = {};
    before(async () => {
      st.db = await createDatabase(`tokens_sidecar_${first === "sessiond" ? "sd" : "ba"}`);
      await MIGRATIONS[0].migrate(st.db, {}, TOKENS);
      [st.ba, st.sd] = await startPair(st.db.url, TOKENS);
      [st.first, st.second] = first === "sessiond" ? [st.sd, st.ba] : [st.ba, st.sd];
    });
    after(async () => {
      await Promise.all([st.ba?.stop(), st.sd?.stop()]);
      await st.db?.drop();
    });

    it("the first /jwks call on an empty table makes one key; the other publishes the same", async () => {
      const { rows } = await st.db.query(`select count(*)::int as n from "jwks"`);
      assert.equal(rows[0].n, 0, "the table starts empty");
      const a = await (await fetch(`${st.first.api}/jwks`)).json();
      assert.equal(a.keys?.length, 1, `${st.first.label}'s key set`);
      st.kid = a.keys[0].kid;
      const b = await (await fetch(`${st.second.api}/jwks`)).json();
      assert.deepStrictEqual(b.keys, a.keys, `${st.second.label} publishes the same key`);
      const after = await st.db.query(`select "id" from "jwks"`);
      assert.deepStrictEqual(after.rows.map((r) => r.id), [st.kid], "one row, the published key");
    });

    it("a session made on one: both mint JWTs with that key, and each verifies with both key sets", async () => {
      const d = new Device("d");
      const email = `sidecar-${Date.now()}${randomBytes(2).toString("hex")}@example.com`;
      const user = ok(await d.call(st.first, (c) => c.signUp.email({ name: "Jay", email, password: PASS })), "sign-up").user;
      const claims = {};
      for (const signer of [st.ba, st.sd]) {
        const r = ok(await d.call(signer, (c) => c.$fetch("/token", { method: "GET" })), `token on ${signer.label}`);
        assert.equal(decodeProtectedHeader(r.token).kid, st.kid, `${signer.label} signs with the shared key`);
        for (const keys of [st.ba, st.sd]) {
          const { payload } = await verifyWith(keys, r.token, signer);
          assert.equal(payload.sub, user.id, `${signer.label}'s token verified with ${keys.label}'s key set`);
        }
        const { payload } = await verifyWith(signer, r.token);
        claims[signer.label] = jwtShape(r.token, signer.baseURL).claims;
        assert.equal(payload.email, email);
      }
      const strip = (c) => plain(Object.fromEntries(Object.entries(c).filter(([k]) => k !== "sid")));
      assert.deepStrictEqual(strip(claims[st.sd.label]), strip(claims[st.ba.label]), "the same claims for the same user");
    });

    it("a bearer handed out by one is a session on the other", async () => {
      const email = `bearer-${Date.now()}${randomBytes(2).toString("hex")}@example.com`;
      const maker = new BearerDevice("maker");
      const made = await maker.call(st.first, (c) => c.signUp.email({ name: "Kim", email, password: PASS }));
      maker.token = bearerOf(made);
      assert.ok(maker.token, "set-auth-token");
      const other = await maker.call(st.second, (c) => c.getSession());
      assert.equal(ok(other)?.session.token, rawToken(maker.token), `${st.second.label} accepts ${st.first.label}'s bearer`);
      const { payload } = await verifyWith(st.first, other.headers.setAuthJwt, st.second);
      assert.equal(payload.email, email, "its set-auth-jwt verifies with the maker's key set");
    });
  });
}
