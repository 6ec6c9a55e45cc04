// examples/jwt-verifier/ end to end: nginx (examples/jwt-verifier/nginx.conf) → sessiond's forward
// auth with forward_auth.jwt → the Python verifier (PyJWT from PyPI, installed here in a virtual
// environment under target/), which checks X-Auth-Jwt with sessiond's key set and follows the
// revocation feed. Three sessiond replicas on one database sit behind nginx (round robin), and the
// verifier follows the feed of the third. A signed-in request passes; after the session is revoked
// through another replica the verifier refuses the very same JWT within a second (polled against
// a deadline).

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { REPO_DIR, createDatabase, freePort, startSessiond } from "../lib/harness.mjs";
import { Device } from "../lib/client.mjs";
import { ok } from "../lib/sidecar.mjs";

const EXAMPLE = path.join(REPO_DIR, "examples", "jwt-verifier");
const VENV = path.join(REPO_DIR, "target", "jwt-verifier-venv");
const FEED_KEY = `compat-feed-key-${randomBytes(16).toString("hex")}`;
const PASS = "verifier-password-1";
const PUBLIC_URL = "https://auth.example.test";

/** The verifier's Python, with PyJWT[crypto] from requirements.txt installed (once). */
function python() {
  const py = path.join(VENV, "bin", "python");
  const stamp = path.join(VENV, ".requirements");
  const want = readFileSync(path.join(EXAMPLE, "requirements.txt"), "utf8");
  if (existsSync(py) && existsSync(stamp) && readFileSync(stamp, "utf8") === want) return py;
  const run = (cmd, args) => {
    const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 300_000 });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  };
  run("python3", ["-m", "venv", VENV]);
  run(py, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", path.join(EXAMPLE, "requirements.txt")]);
  writeFileSync(stamp, want);
  return py;
}

/** A child process killed by stop(); its output kept for failures. */
function child(cmd, args, opts) {
  const p = spawn(cmd, args, { ...opts, stdio: ["ignore", "pipe", "pipe"] });
  const out = [];
  p.stdout.on("data", (c) => out.push(c.toString()));
  p.stderr.on("data", (c) => out.push(c.toString()));
  const exited = new Promise((r) => p.on("exit", r));
  process.on("exit", () => p.kill("SIGKILL"));
  return {
    log: () => out.join("").split("\n").slice(-30).join("\n"),
    async stop() {
      if (p.exitCode === null && p.signalCode === null) {
        p.kill("SIGTERM");
        await exited;
      }
    },
  };
}

async function waitFor(url, proc) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await (await fetch(url, { signal: AbortSignal.timeout(1000) })).arrayBuffer();
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`${url} not up:\n${proc.log()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** nginx running examples/jwt-verifier/nginx.conf with the test's ports, sessiond's being an
 * upstream group of every replica. */
function startNginx(dir, listen, replicas, verifier) {
  const server = readFileSync(path.join(EXAMPLE, "nginx.conf"), "utf8")
    .replace("127.0.0.1:8080", `127.0.0.1:${listen}`)
    .replaceAll("http://127.0.0.1:3000", "http://sessiond_replicas")
    .replaceAll("127.0.0.1:9000", `127.0.0.1:${verifier}`);
  const upstream = `upstream sessiond_replicas {\n${replicas.map((p) => `  server 127.0.0.1:${p};\n`).join("")}}\n`;
  const conf = `daemon off;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents {}\nhttp {\naccess_log off;\n${upstream}`
    + `client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi;\n`
    + `uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;\n${server}\n}\n`;
  writeFileSync(path.join(dir, "nginx.conf"), conf);
  return child("nginx", ["-p", dir, "-c", path.join(dir, "nginx.conf")], {});
}

describe("[jwt-verifier] nginx auth_request → sessiond forward auth with a JWT → the Python verifier", { concurrency: false }, () => {
  const st = {};
  before(async () => {
    assert.equal(spawnSync("nginx", ["-v"]).status, 0, "nginx is required (.ci/run installs it)");
    const py = python();
    st.dir = mkdtempSync(path.join(tmpdir(), "sessiond-jwt-verifier-"));
    st.db = await createDatabase("jwt_verifier");
    const replica = (label) => startSessiond({
      databaseUrl: st.db.url,
      label,
      extraEnv: {
        SESSIOND_PLUGINS__JWT__ENABLED: "true",
        SESSIOND_FORWARD_AUTH__JWT__ENABLED: "true",
        SESSIOND_REVOCATION_FEED__ENABLED: "true",
        SESSIOND_REVOCATION_FEED__KEY: FEED_KEY,
        // Replicas of one service: one issuer, whatever address each listens on.
        SESSIOND_PLUGINS__JWT__ISSUER: PUBLIC_URL,
        SESSIOND_PLUGINS__JWT__AUDIENCE: PUBLIC_URL,
      },
    });
    // One at a time: the first migrates the database.
    st.sd = await replica("sessiond A");
    st.sdB = await replica("sessiond B");
    st.sdC = await replica("sessiond C");
    const [vPort, nPort] = [await freePort(), await freePort()];
    st.verifierURL = `http://127.0.0.1:${vPort}`;
    st.verifier = child(py, [path.join(EXAMPLE, "verifier.py")], {
      env: { PATH: process.env.PATH, SESSIOND_URL: st.sdC.baseURL, JWT_ISSUER: PUBLIC_URL, REVOCATION_KEY: FEED_KEY, LISTEN: `127.0.0.1:${vPort}` },
    });
    await waitFor(st.verifierURL, st.verifier);
    st.nginx = startNginx(st.dir, nPort, [st.sd.port, st.sdB.port, st.sdC.port], vPort);
    st.proxyURL = `http://127.0.0.1:${nPort}`;
    await waitFor(st.proxyURL, st.nginx);
  });
  after(async () => {
    await Promise.all([st.nginx?.stop(), st.verifier?.stop(), st.sd?.stop(), st.sdB?.stop(), st.sdC?.stop()]);
    await st.db?.drop();
    if (st.dir) rmSync(st.dir, { recursive: true, force: true });
  });

  const signUp = async (name) => {
    const d = new Device(name);
    const email = `${name}-${Date.now()}${randomBytes(2).toString("hex")}@example.com`;
    const user = ok(await d.call(st.sd, (c) => c.signUp.email({ name, email, password: PASS })), "sign-up").user;
    return { d, email, user };
  };
  const viaProxy = async (d, headers = {}) => {
    const res = await fetch(`${st.proxyURL}/app/page`, { headers: { ...(d ? { cookie: d.cookieHeader() } : {}), ...headers } });
    return { status: res.status, body: await res.json().catch(() => null) };
  };
  const atVerifier = async (headers) => {
    const res = await fetch(`${st.verifierURL}/app/page`, { headers });
    return { status: res.status, body: await res.json().catch(() => null) };
  };

  it("a signed-in request through nginx reaches the verifier with a JWT that verifies", async () => {
    st.ada = await signUp("ada");
    const r = await viaProxy(st.ada.d);
    assert.equal(r.status, 200, `${JSON.stringify(r.body)}\n${st.verifier.log()}`);
    assert.equal(r.body.claims.sub, st.ada.user.id);
    assert.equal(r.body.claims.email, st.ada.email);
    assert.match(r.body.claims.sid ?? "", /^[0-9a-f]{64}$/, "the sid claim (revocation feed on)");
  });

  it("the JWT forward auth hands out verifies at the verifier, in X-Auth-Jwt and as a bearer; a tampered one does not", async () => {
    const res = await fetch(`${st.sd.baseURL}/forward-auth`, { headers: { cookie: st.ada.d.cookieHeader() } });
    assert.equal(res.status, 200);
    st.jwt = res.headers.get("x-auth-jwt");
    assert.ok(st.jwt, "X-Auth-Jwt on forward auth's 200");
    assert.equal((await atVerifier({ "x-auth-jwt": st.jwt })).status, 200);
    assert.equal((await atVerifier({ authorization: `Bearer ${st.jwt}` })).status, 200);
    const [h, p, s] = st.jwt.split(".");
    const claims = JSON.parse(Buffer.from(p, "base64url").toString());
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: "someone-else" })).toString("base64url")}.${s}`;
    assert.equal((await atVerifier({ "x-auth-jwt": forged })).status, 401, "a JWT with changed claims");
    assert.equal((await atVerifier({})).status, 401, "no JWT");
  });

  it("an X-Auth-Jwt a client sends never reaches the verifier: nginx sets sessiond's", async () => {
    const bob = await signUp("bob");
    const r = await viaProxy(bob.d, { "x-auth-jwt": st.jwt, authorization: `Bearer ${st.jwt}` });
    assert.equal(r.status, 200);
    assert.equal(r.body.claims.sub, bob.user.id, "bob's identity, not the one he sent");
    assert.equal((await viaProxy(null, { "x-auth-jwt": st.jwt })).status, 401, "signed out: auth_request refuses");
  });

  it("after the session is revoked through replica B the verifier, following replica C, refuses the same JWT within a second", async () => {
    ok(await st.ada.d.clone().call(st.sdB, (c) => c.signOut()), "sign-out on B");
    const deadline = Date.now() + 1000;
    let last;
    for (;;) {
      last = await atVerifier({ "x-auth-jwt": st.jwt });
      if (last.status === 401 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(last.status, 401, `still accepted after the deadline: ${JSON.stringify(last.body)}\n${st.verifier.log()}`);
    assert.equal(last.body.message, "session revoked");
    assert.equal((await viaProxy(st.ada.d)).status, 401, "the revoked cookie through nginx");
  });
});
