// Test harness for the compatibility suite: fresh PostgreSQL databases, free loopback ports,
// the real Better Auth (compat/better-auth/server.mjs) and sessiond (the binary at
// $SESSIOND_BIN) as child processes, each started with a hermetic environment and stopped
// (and its database dropped) by the caller's `after` hook.
//
// Every process started here is also written to $COMPAT_RUN_DIR/pids and every database is
// named compat_<run id>_…, so that compat/run.sh can clean up after a test process that died
// without running its hooks.

import { spawn, spawnSync, execFile } from "node:child_process";
import { mkdtempSync, mkdirSync, appendFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import pg from "pg";

export const COMPAT_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const REPO_DIR = path.resolve(COMPAT_DIR, "..");
export const BA_SERVER = path.join(COMPAT_DIR, "better-auth", "server.mjs");
export const SESSIOND_BIN = path.resolve(REPO_DIR, process.env.SESSIOND_BIN || "target/debug/sessiond");
export const PG_ADMIN_URL = process.env.COMPAT_PG_URL || "postgres://postgres@127.0.0.1:5432/postgres";
export const RUN_ID = (process.env.COMPAT_RUN_ID || `${process.pid}${randomBytes(2).toString("hex")}`)
  .toLowerCase().replace(/[^a-z0-9]/g, "");
const RUN_DIR = process.env.COMPAT_RUN_DIR || null;

/**
 * COMPAT_STAND_IN=better-auth: a second Better Auth takes sessiond's place, to check a test's
 * own expectations against Better Auth alone before sessiond has the feature (what only sessiond
 * does, such as immediate revocation or re-signing on rotation, then fails).
 */
const STAND_IN = process.env.COMPAT_STAND_IN === "better-auth";

/** The secret both sides share in sidecar mode (and each uses alone otherwise). */
export const SECRET = "compat-shared-secret-hT4qW9xZ2mK7vB1nR8sL5cJ3fG6dY0pA";

const children = new Set();
process.on("exit", () => {
  for (const c of children) {
    try { c.kill("SIGKILL"); } catch { /* gone */ }
  }
});

// ---------------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------------

function dbUrl(name) {
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  return u.href;
}

let dbCounter = 0;

/** Creates a fresh, empty database; returns { name, url, query(sql, params), drop() }. */
export async function createDatabase(label) {
  const name = `compat_${RUN_ID}_${label.toLowerCase().replace(/[^a-z0-9]+/g, "_")}_${++dbCounter}`.slice(0, 63);
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`drop database if exists "${name}"`);
    await admin.query(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  const url = dbUrl(name);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  // an idle connection ended by `drop database … with (force)` is expected, not a failure
  pool.on("error", () => {});
  let dropped = false;
  return {
    name,
    url,
    query: (sql, params) => pool.query(sql, params),
    async drop() {
      if (dropped) return;
      dropped = true;
      await pool.end().catch(() => {});
      const a = new pg.Client({ connectionString: PG_ADMIN_URL });
      await a.connect();
      try {
        await a.query(`drop database if exists "${name}" with (force)`);
      } finally {
        await a.end();
      }
    },
  };
}

/** Drops every database of this run (or of the given run id) that is left over. */
export async function dropRunDatabases(runId = RUN_ID) {
  const a = new pg.Client({ connectionString: PG_ADMIN_URL });
  await a.connect();
  try {
    const { rows } = await a.query("select datname from pg_database where datname like $1",
      [`compat\\_${runId}\\_%`]);
    for (const { datname } of rows) await a.query(`drop database if exists "${datname}" with (force)`);
    return rows.map((r) => r.datname);
  } finally {
    await a.end();
  }
}

/** Columns, constraints and indexes of the public schema (sqlx's bookkeeping table aside). */
export async function schemaOf(db) {
  const columns = (await db.query(`
    select table_name, column_name, data_type, is_nullable, column_default
      from information_schema.columns
     where table_schema = 'public' and table_name not like '\\_sqlx%'
     order by table_name, column_name`)).rows;
  const constraints = (await db.query(`
    select conrelid::regclass::text as "table", contype, pg_get_constraintdef(oid) as def
      from pg_constraint
     where connamespace = 'public'::regnamespace and conrelid::regclass::text not like '\\_sqlx%'
     order by 1, 3`)).rows;
  const indexes = (await db.query(`
    select tablename, indexdef from pg_indexes
     where schemaname = 'public' and tablename not like '\\_sqlx%'
     order by 1, 2`)).rows;
  return { columns, constraints, indexes };
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** The caller's environment without anything that would configure either server. */
function baseEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(SESSIOND_|BETTER_AUTH_|NODE_TEST|NODE_OPTIONS$|NODE_ENV$|DATABASE_URL$|REDIS_URL$|HOST$|PORT$|BASE_URL$|RUST_LOG$)/.test(k)) continue;
    // Better Auth server knobs (compat/better-auth/server.mjs)
    if (/^(EXPIRES_IN|UPDATE_AGE|FRESH_AGE|DEFER_SESSION_REFRESH|COOKIE_CACHE.*|THEME_FIELD|STORE_SESSION_IN_DATABASE|PRESERVE_SESSION_IN_DATABASE|RATE_LIMIT|PG_POOL_MAX|ADMIN|USER_ADDITIONAL_FIELDS|GENERATE_ID|ADVANCED_COOKIES|BEARER|JWT)$/.test(k)) continue;
    env[k] = v;
  }
  return env;
}

function recordPid(pid) {
  if (!RUN_DIR || !pid) return;
  try {
    mkdirSync(RUN_DIR, { recursive: true });
    appendFileSync(path.join(RUN_DIR, "pids"), `${pid}\n`);
  } catch { /* best effort */ }
}

function run(cmd, args, env, cwd) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env, cwd, timeout: 60_000, maxBuffer: 1 << 22 }, (err, stdout, stderr) => {
      if (err) {
        err.message += `\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`;
        reject(err);
      } else resolve({ stdout, stderr });
    });
  });
}

async function waitReady(proc, url, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      // its last output may still be in the pipes
      await Promise.race([proc.closed, new Promise((r) => setTimeout(r, 1000))]);
      const e = new Error(`${proc.label} exited (${proc.exitCode ?? proc.signalCode}) before it was ready:\n${proc.logTail()}`);
      // for a test that expects the server to refuse to start
      e.exitCode = proc.exitCode ?? proc.signalCode;
      e.log = proc.logTail(400);
      throw e;
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) {
        await res.arrayBuffer();
        return;
      }
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${proc.label} not ready after ${timeoutMs} ms:\n${proc.logTail()}`);
}

/**
 * Starts a server process and waits for GET <baseURL>/api/auth/ok. Returns
 * { label, port, baseURL, api, env, stop(), logTail() }.
 */
async function startProcess({ label, cmd, args, env, port, cwd }) {
  const child = spawn(cmd, args, { env, cwd, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  recordPid(child.pid);
  const log = [];
  const keep = (chunk) => {
    log.push(chunk.toString("utf8"));
    if (log.length > 400) log.splice(0, log.length - 400);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const exited = new Promise((r) => child.on("exit", () => { children.delete(child); r(); }));
  child.closed = new Promise((r) => child.on("close", r));
  const baseURL = `http://127.0.0.1:${port}`;
  const server = {
    label, port, baseURL, api: `${baseURL}/api/auth`, env, pid: child.pid,
    logTail: (n = 40) => log.join("").split("\n").slice(-n).join("\n"),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(t);
    },
  };
  child.label = label;
  child.logTail = server.logTail;
  try {
    await waitReady(child, `${server.api}/ok`, 30_000);
  } catch (e) {
    await server.stop();
    throw e;
  }
  return server;
}

/**
 * Session options, in one vocabulary for both servers:
 *   { cache: null | "compact" | "jwt" | "jwe", cacheMaxAge, theme: bool, expiresIn, updateAge,
 *     freshAge, deferRefresh: bool, redisUrl }
 * and the options of the Better Auth profiles (values in Better Auth's shape, mapped to
 * sessiond's snake_case options):
 *   { admin: bool, userFields: user.additionalFields, generateId: "uuid" | "serial",
 *     cookies: advanced.cookies, secrets: "2:<new>,1:<old>" (BETTER_AUTH_SECRETS, for both),
 *     bearer: bool (bearer()), jwt: bool (jwt()),
 *     multiSession: { max?: maximumSessions } (multiSession()) }
 */
/** Each server's variable for each session option, and how it spells "on". */
const OPTION_VARS = {
  betterAuth: {
    on: "1", cache: "COOKIE_CACHE", strategy: "COOKIE_CACHE_STRATEGY", cacheMaxAge: "COOKIE_CACHE_MAX_AGE",
    expiresIn: "EXPIRES_IN", updateAge: "UPDATE_AGE", freshAge: "FRESH_AGE",
    deferRefresh: "DEFER_SESSION_REFRESH",
  },
  sessiond: {
    on: "true", cache: "SESSIOND_SESSION__COOKIE_CACHE__ENABLED",
    strategy: "SESSIOND_SESSION__COOKIE_CACHE__STRATEGY", cacheMaxAge: "SESSIOND_SESSION__COOKIE_CACHE__MAX_AGE",
    expiresIn: "SESSIOND_SESSION__EXPIRES_IN", updateAge: "SESSIOND_SESSION__UPDATE_AGE",
    freshAge: "SESSIOND_SESSION__FRESH_AGE", deferRefresh: "SESSIOND_SESSION__DEFER_SESSION_REFRESH",
  },
};

/** The options both servers share, in one server's variables. */
function optionEnv(o, v) {
  const e = {};
  if (o.cache) {
    e[v.cache] = v.on;
    e[v.strategy] = o.cache;
    if (o.cacheMaxAge) e[v.cacheMaxAge] = String(o.cacheMaxAge);
  }
  for (const k of ["expiresIn", "updateAge", "freshAge"]) {
    if (o[k] !== undefined) e[v[k]] = String(o[k]);
  }
  if (o.deferRefresh) e[v.deferRefresh] = v.on;
  if (o.redisUrl) e.REDIS_URL = o.redisUrl;
  return e;
}

function betterAuthEnv(o) {
  const e = optionEnv(o, OPTION_VARS.betterAuth);
  if (o.theme) e.THEME_FIELD = "1";
  if (o.admin) e.ADMIN = "1";
  if (o.userFields) e.USER_ADDITIONAL_FIELDS = JSON.stringify(o.userFields);
  if (o.generateId) e.GENERATE_ID = o.generateId;
  if (o.cookies) e.ADVANCED_COOKIES = JSON.stringify(o.cookies);
  if (o.bearer) e.BEARER = "1";
  if (o.jwt) e.JWT = "1";
  if (o.multiSession) {
    e.MULTI_SESSION = "1";
    if (o.multiSession.max) e.MULTI_SESSION_MAX = String(o.multiSession.max);
  }
  return e;
}

/** Better Auth's camelCase keys as sessiond's snake_case options (`defaultValue` → `default_value`). */
function snakeKeys(v) {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), snakeKeys(x)]));
}

/** The profile options in sessiond's variables. */
function sessiondProfileEnv(o) {
  const e = {};
  if (o.admin) e.SESSIOND_PLUGINS__ADMIN__ENABLED = "true";
  if (o.userFields) e.SESSIOND_USER__ADDITIONAL_FIELDS = JSON.stringify(snakeKeys(o.userFields));
  if (o.generateId) e.SESSIOND_ADVANCED__DATABASE__GENERATE_ID = o.generateId;
  if (o.bearer) e.SESSIOND_PLUGINS__BEARER__ENABLED = "true";
  if (o.jwt) e.SESSIOND_PLUGINS__JWT__ENABLED = "true";
  if (o.multiSession) {
    e.SESSIOND_PLUGINS__MULTI_SESSION__ENABLED = "true";
    if (o.multiSession.max) e.SESSIOND_PLUGINS__MULTI_SESSION__MAXIMUM_SESSIONS = String(o.multiSession.max);
  }
  for (const [kind, c] of Object.entries(o.cookies ?? {})) {
    const v = `SESSIOND_ADVANCED__COOKIES__${kind.toUpperCase()}`;
    if (c.name) e[`${v}__NAME`] = c.name;
    if (c.attributes) e[`${v}__ATTRIBUTES`] = JSON.stringify(snakeKeys(c.attributes));
  }
  return e;
}

/**
 * The secret variables, the same for both servers: BETTER_AUTH_SECRETS alone when the options
 * give versioned secrets (both read it), else BETTER_AUTH_SECRET.
 */
function secretEnv(o, secret) {
  return o.secrets ? { BETTER_AUTH_SECRETS: o.secrets } : { BETTER_AUTH_SECRET: secret };
}

function sessiondEnv(o) {
  const e = { ...optionEnv(o, OPTION_VARS.sessiond), ...sessiondProfileEnv(o) };
  if (o.theme) e.SESSIOND_SESSION__ADDITIONAL_FIELDS = JSON.stringify({ theme: { type: "string" } });
  // sessiond refuses a revoked session's cookie cache at once (immediate revocation) where Better Auth
  // serves it until max_age; `immediateRevocation: false` asks for Better Auth's behaviour
  // (ignored by a sessiond without the option)
  if (o.immediateRevocation !== undefined && o.cache && sessiondSupports("SESSIOND_SESSION__COOKIE_CACHE__IMMEDIATE_REVOCATION")) {
    e.SESSIOND_SESSION__COOKIE_CACHE__IMMEDIATE_REVOCATION = String(o.immediateRevocation);
  }
  // Immediate revocation relies on Redis announcing deletions; on a Redis whose
  // notify-keyspace-events lacks them sessiond (rightly) revalidates every cache hit, which
  // would hide the cache behaviour under test. The suite's Redis is its own: set the flags.
  if (o.redisUrl && o.cache && sessiondSupports("SESSIOND_REDIS__KEYSPACE_NOTIFICATIONS", "configure")) {
    e.SESSIOND_REDIS__KEYSPACE_NOTIFICATIONS = "configure";
  }
  // Better Auth stores 42 sent for a text field as "42", as sessiond does by default;
  // `coerce: false` asks for sessiond's strict 400 instead (README, compatibility table).
  if (o.coerce === false) e.SESSIOND_ADVANCED__COERCE_FIELD_TYPES = "false";
  return e;
}

const supported = new Map();

/**
 * Whether the sessiond binary knows the option set by this environment variable: its config
 * loader refuses unknown options with exit status 2 (`sessiond healthcheck` loads the config,
 * then fails to connect to port 1 with status 1).
 */
export function sessiondSupports(envVar, value = "false") {
  if (!supported.has(envVar)) {
    const r = spawnSync(SESSIOND_BIN, ["healthcheck"], {
      env: { ...baseEnv(), SESSIOND_PORT: "1", SESSIOND_DATA_DIR: sessiondDataDir(), [envVar]: value },
      cwd: REPO_DIR, timeout: 10_000, encoding: "utf8",
    });
    // 1: the config loaded and port 1 refused the connection; 2: a configuration error
    supported.set(envVar, r.status === 1 && !/unknown option/.test(r.stderr ?? ""));
  }
  return supported.get(envVar);
}

/** Runs Better Auth's own migrator on the database. */
export async function migrateBetterAuth(databaseUrl, options = {}) {
  const env = { ...baseEnv(), ...betterAuthEnv(options), DATABASE_URL: databaseUrl, ...secretEnv(options, SECRET) };
  await run(process.execPath, [BA_SERVER, "migrate"], env, COMPAT_DIR);
}

/**
 * What Better Auth's migrator would still create or add in the database, for these options:
 * { toBeCreated: [table], toBeAdded: ["table.column"], sql, warnings } (lib/ba-schema.mjs).
 */
export async function betterAuthPending(databaseUrl, options = {}) {
  const r = await runNode([path.join(COMPAT_DIR, "lib", "ba-schema.mjs")], {
    env: { ...betterAuthEnv(options), DATABASE_URL: databaseUrl, ...secretEnv(options, SECRET) },
  });
  if (r.code !== 0) throw new Error(`ba-schema.mjs failed (${r.code}):\n${r.stderr}`);
  return { ...JSON.parse(r.stdout.trim().split("\n").pop()), warnings: r.stderr.trim() };
}

let sessiondData = null;
function sessiondDataDir() {
  if (!sessiondData) {
    sessiondData = mkdtempSync(path.join(tmpdir(), "sessiond-compat-"));
    process.on("exit", () => rmSync(sessiondData, { recursive: true, force: true }));
  }
  return sessiondData;
}

/** Runs `sessiond migrate` on the database. */
export async function migrateSessiond(databaseUrl, options = {}) {
  if (STAND_IN) return migrateBetterAuth(databaseUrl, options);
  const env = {
    ...baseEnv(), ...sessiondEnv(options), DATABASE_URL: databaseUrl, ...secretEnv(options, SECRET),
    SESSIOND_DATA_DIR: sessiondDataDir(), SESSIOND_LOG__LEVEL: "warn",
  };
  return run(SESSIOND_BIN, ["migrate"], env, REPO_DIR);
}

/** Starts the real Better Auth on a free port. */
export async function startBetterAuth({ databaseUrl, options = {}, secret = SECRET, label = "better-auth" }) {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const env = {
      ...baseEnv(), ...betterAuthEnv(options), DATABASE_URL: databaseUrl, ...secretEnv(options, secret),
      HOST: "127.0.0.1", PORT: String(port), BASE_URL: `http://127.0.0.1:${port}`, PG_POOL_MAX: "4",
    };
    try {
      return await startProcess({ label, cmd: process.execPath, args: [BA_SERVER], env, port, cwd: COMPAT_DIR });
    } catch (e) {
      if (attempt < 2 && /EADDRINUSE/.test(String(e.message))) continue;
      throw e;
    }
  }
}

/** Starts sessiond (the binary at $SESSIOND_BIN) on a free port. */
export async function startSessiond({ databaseUrl, options = {}, secret = SECRET, label = "sessiond", extraEnv = {} }) {
  if (STAND_IN) {
    if (extraEnv.SESSIOND_DATABASE__MIGRATE_ON_START !== "false") await migrateBetterAuth(databaseUrl, options);
    return startBetterAuth({ databaseUrl, options, secret, label: `${label} (Better Auth standing in)` });
  }
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const env = {
      ...baseEnv(), ...sessiondEnv(options),
      DATABASE_URL: databaseUrl, ...secretEnv(options, secret),
      SESSIOND_HOST: "127.0.0.1", SESSIOND_PORT: String(port), SESSIOND_BASE_URL: `http://127.0.0.1:${port}`,
      SESSIOND_DATA_DIR: sessiondDataDir(), SESSIOND_DATABASE__MAX_CONNECTIONS: "4",
      SESSIOND_RATE_LIMIT__ENABLED: "false", SESSIOND_LOG__LEVEL: "warn", SESSIOND_LOG__FORMAT: "pretty",
      NO_COLOR: "1",
      ...extraEnv,
    };
    try {
      return await startProcess({ label, cmd: SESSIOND_BIN, args: ["serve"], env, port, cwd: REPO_DIR });
    } catch (e) {
      if (attempt < 2 && /address already in use|EADDRINUSE/i.test(String(e.message))) continue;
      throw e;
    }
  }
}

/** Runs a node script to completion; resolves { code, stdout, stderr } (never rejects on exit code). */
export function runNode(args, { env = {}, timeoutMs = 120_000 } = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { env: { ...baseEnv(), ...env }, cwd: REPO_DIR, stdio: ["ignore", "pipe", "pipe"] });
    children.add(child);
    recordPid(child.pid);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => { stdout += c; });
    child.stderr.on("data", (c) => { stderr += c; });
    const t = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("exit", (code, signal) => {
      clearTimeout(t);
      children.delete(child);
      resolve({ code: code ?? signal, stdout, stderr });
    });
  });
}
