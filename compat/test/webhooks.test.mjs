// Signed webhooks across replicas: three sessiond replicas on one PostgreSQL database, two
// endpoints on one receiver that verifies every delivery with the Standard Webhooks reference
// library (npm `standardwebhooks`) and records each webhook-id.
//
//   - 100 sign-ins and their sign-outs spread over the replicas: every event in the database
//     reaches each endpoint exactly once (no id twice, none missing);
//   - 100 more while the receiver is killed for a few seconds and started again: nothing is
//     lost, and an id seen twice is a redelivery of the same event (same body);
//   - the real Better Auth on the same database signs a user in and out: its deletion of the
//     session yields exactly one `session.revoked` event, origin "external";
//   - no session token, cookie value or password appears in any delivered body.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { createDatabase, freePort, startBetterAuth, startSessiond } from "../lib/harness.mjs";
import { Device } from "../lib/client.mjs";
import { ok } from "../lib/sidecar.mjs";

const PASS = `webhook-password-${randomBytes(6).toString("hex")}`;
const SECRET = `whsec_${randomBytes(32).toString("base64")}`;
const verifier = new Webhook(SECRET);

/** The receiver: POST /a and /b, each delivery verified and recorded; can be stopped and
 * started again on the same port. */
function receiver(port) {
  const st = { got: { a: [], b: [] }, bad: [], server: null };
  const handle = (req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const ep = req.url.slice(1);
      try {
        const payload = verifier.verify(body, req.headers);
        st.got[ep].push({ id: req.headers["webhook-id"], body, payload });
        res.writeHead(204).end();
      } catch (e) {
        st.bad.push(`${ep}: ${e.message}`);
        res.writeHead(400).end();
      }
    });
  };
  st.start = () => new Promise((resolve) => {
    st.server = http.createServer(handle);
    st.server.listen(port, "127.0.0.1", resolve);
  });
  st.stop = () => new Promise((resolve) => {
    st.server.close(() => resolve());
    st.server.closeAllConnections();
  });
  return st;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe("[webhooks] three replicas, two endpoints, one receiver", { concurrency: false }, () => {
  const st = { secrets: [PASS] };
  /** Remembers a signed-in device's token and cookie values (sign-out clears the jar). */
  const keep = (d) => {
    for (const v of d.cookies.values()) st.secrets.push(v, decodeURIComponent(v));
    st.secrets.push(d.token());
  };
  before(async () => {
    st.db = await createDatabase("webhooks");
    st.port = await freePort();
    st.rx = receiver(st.port);
    await st.rx.start();
    const endpoints = JSON.stringify(["a", "b"].map((id) => ({ id, url: `http://127.0.0.1:${st.port}/${id}`, secret: SECRET })));
    const replica = (label) => startSessiond({
      databaseUrl: st.db.url,
      label,
      extraEnv: { SESSIOND_WEBHOOKS__ENDPOINTS: endpoints, SESSIOND_WEBHOOKS__TIMEOUT: "2" },
    });
    // One at a time: the first migrates the database.
    st.replicas = [await replica("sessiond A"), await replica("sessiond B"), await replica("sessiond C")];
    st.emails = [];
    for (let i = 0; i < 10; i++) {
      const email = `hook-${i}-${randomBytes(4).toString("hex")}@example.com`;
      const d = new Device(`U${i}`);
      ok(await d.call(st.replicas[i % 3], (c) => c.signUp.email({ name: `U${i}`, email, password: PASS })), "sign-up");
      keep(d);
      st.emails.push(email);
    }
  });
  after(async () => {
    await Promise.all((st.replicas ?? []).map((r) => r.stop()));
    await st.rx?.stop().catch(() => {});
    await st.db?.drop();
  });

  /** `n` sign-ins spread over the replicas, each signed out through another replica. */
  async function churn(n, from) {
    for (let i = from; i < from + n; i++) {
      const d = new Device(`S${i}`);
      ok(await d.call(st.replicas[i % 3], (c) => c.signIn.email({ email: st.emails[i % 10], password: PASS })), "sign-in");
      keep(d);
      ok(await d.call(st.replicas[(i + 1) % 3], (c) => c.signOut()), "sign-out");
    }
  }

  /** Waits until no event is pending; the events in the table. */
  async function settled() {
    const deadline = Date.now() + 90_000;
    for (;;) {
      const { rows } = await st.db.query(`select count(*)::int as n from "sessiond_event" where "pending"`);
      if (rows[0].n === 0) break;
      assert.ok(Date.now() < deadline, `${rows[0].n} events still pending`);
      await sleep(250);
    }
    return (await st.db.query(`select "eventId", "type", "data" from "sessiond_event" order by "id"`)).rows;
  }

  function counts(ep) {
    const m = new Map();
    for (const g of st.rx.got[ep]) m.set(g.id, [...(m.get(g.id) ?? []), g.body]);
    return m;
  }

  it("delivers every event exactly once per endpoint across three replicas", async () => {
    await churn(100, 0);
    const events = await settled();
    assert.ok(events.length >= 10 + 200, `${events.length} events`);
    assert.deepEqual(st.rx.bad, []);
    for (const ep of ["a", "b"]) {
      const c = counts(ep);
      const twice = [...c].filter(([, bodies]) => bodies.length > 1).map(([id]) => id);
      assert.deepEqual(twice, [], `${ep}: delivered twice`);
      assert.deepEqual([...c.keys()].sort(), events.map((e) => e.eventId).sort(), `${ep}: missing or extra`);
    }
    const types = new Set(events.map((e) => e.type));
    for (const t of ["user.created", "session.created", "user.signed_in", "session.revoked"]) assert.ok(types.has(t), t);
  });

  it("loses nothing when the receiver is killed and started again", async () => {
    const work = churn(100, 100);
    await sleep(1500);
    await st.rx.stop();
    const down = new Date();
    await sleep(4000);
    const up = new Date();
    await st.rx.start();
    await work;
    const events = await settled();
    assert.deepEqual(st.rx.bad, []);
    // Events made while the receiver was down exist, so their first deliveries failed: they
    // arrived through retries.
    const during = await st.db.query(
      `select "eventId" from "sessiond_event" where "occurredAt" > $1 and "occurredAt" < $2`, [down, up]);
    assert.ok(during.rows.length > 0, "events were made during the outage");
    for (const ep of ["a", "b"]) {
      const c = counts(ep);
      assert.deepEqual([...c.keys()].sort(), events.map((e) => e.eventId).sort(), `${ep}: missing or extra`);
      for (const [id, bodies] of c) {
        assert.ok(bodies.every((b) => b === bodies[0]), `${ep}: ${id} delivered twice with different bodies`);
      }
    }
  });

  it("a session Better Auth deletes yields one session.revoked, origin external", async () => {
    const ba = await startBetterAuth({ databaseUrl: st.db.url });
    try {
      const d = new Device("BA");
      const signedIn = ok(await d.call(ba, (c) => c.signIn.email({ email: st.emails[0], password: PASS })), "BA sign-in");
      keep(d);
      const sessionId = (await st.db.query(`select "id" from "session" where "token" = $1`, [d.token()])).rows[0]?.id;
      assert.ok(sessionId, `Better Auth's session row (${JSON.stringify(signedIn)})`);
      ok(await d.call(ba, (c) => c.signOut()), "BA sign-out");
      const events = await settled();
      const revoked = events.filter((e) => e.type === "session.revoked" && e.data.sessionId === sessionId);
      assert.equal(revoked.length, 1, JSON.stringify(revoked));
      assert.equal(revoked[0].data.origin, "external");
      for (const ep of ["a", "b"]) {
        const got = st.rx.got[ep].filter((g) => g.id === revoked[0].eventId);
        assert.equal(got.length, 1, `${ep} got it once`);
        assert.equal(got[0].payload.type, "session.revoked");
        assert.equal(got[0].payload.data.origin, "external");
        assert.equal(got[0].payload.data.sessionId, sessionId);
      }
    } finally {
      await ba.stop();
    }
  });

  it("no token, cookie value or password in any delivered body", () => {
    const secrets = st.secrets.filter((s) => s && s.length >= 16);
    assert.ok(secrets.length > 200, `${secrets.length} secrets`);
    for (const ep of ["a", "b"]) {
      for (const g of st.rx.got[ep]) {
        for (const s of secrets) assert.ok(!g.body.includes(s), `${ep}: a secret in ${g.body}`);
      }
    }
  });
});
