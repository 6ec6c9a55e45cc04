// A real Better Auth 1.7 server (node:http + its Node handler) over PostgreSQL, for
// comparing with sessiond and for sidecar tests. Configured from the environment:
//
//   node compat/better-auth/server.mjs           serve on $HOST:$PORT
//   node compat/better-auth/server.mjs migrate   create the schema with Better Auth's migrator
//
//   DATABASE_URL          postgres://postgres@127.0.0.1:5432/<db>        (required)
//   HOST, PORT            127.0.0.1, 4000
//   BASE_URL              http://127.0.0.1:$PORT
//   BETTER_AUTH_SECRET    the secret (share it with sessiond for sidecar mode)
//   EXPIRES_IN, UPDATE_AGE, FRESH_AGE   seconds (Better Auth's defaults when unset)
//   DEFER_SESSION_REFRESH 1 = session.deferSessionRefresh
//   COOKIE_CACHE          1 = session.cookieCache.enabled
//   COOKIE_CACHE_STRATEGY compact | jwt | jwe
//   COOKIE_CACHE_MAX_AGE  seconds (300)
//   THEME_FIELD           1 = session.additionalFields.theme (string)
//   REDIS_URL             redis://… = secondaryStorage on Redis (keys as Better Auth writes them)
//   STORE_SESSION_IN_DATABASE, PRESERVE_SESSION_IN_DATABASE   1 = on (with REDIS_URL)
//   RATE_LIMIT            1 = rateLimit.enabled
//   PG_POOL_MAX           pg pool size (10)
import http from "node:http";
import { pathToFileURL } from "node:url";
import pg from "pg";
import { betterAuth } from "better-auth";
import { toNodeHandler } from "better-auth/node";

const env = process.env;
const num = (v) => (v === undefined || v === "" ? undefined : Number(v));
const on = (v) => /^(1|true|yes|on)$/i.test(v ?? "");

const port = num(env.PORT) ?? 4000;
const host = env.HOST ?? "127.0.0.1";
if (!env.DATABASE_URL) {
  console.error("DATABASE_URL is required");
  process.exit(2);
}
const pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: num(env.PG_POOL_MAX) ?? 10 });

async function redisStorage(url) {
  const { default: Redis } = await import("ioredis");
  const redis = new Redis(url);
  return {
    redis,
    storage: {
      get: (key) => redis.get(key),
      set: (key, value, ttl) => (ttl ? redis.set(key, value, "EX", ttl) : redis.set(key, value)),
      delete: (key) => redis.del(key).then(() => undefined),
    },
  };
}

const session = {};
if (num(env.EXPIRES_IN) !== undefined) session.expiresIn = num(env.EXPIRES_IN);
if (num(env.UPDATE_AGE) !== undefined) session.updateAge = num(env.UPDATE_AGE);
if (num(env.FRESH_AGE) !== undefined) session.freshAge = num(env.FRESH_AGE);
if (on(env.DEFER_SESSION_REFRESH)) session.deferSessionRefresh = true;
if (on(env.COOKIE_CACHE)) {
  session.cookieCache = {
    enabled: true,
    strategy: env.COOKIE_CACHE_STRATEGY || "compact",
    maxAge: num(env.COOKIE_CACHE_MAX_AGE) ?? 300,
  };
}
if (on(env.THEME_FIELD)) session.additionalFields = { theme: { type: "string", required: false } };
if (on(env.STORE_SESSION_IN_DATABASE)) session.storeSessionInDatabase = true;
if (on(env.PRESERVE_SESSION_IN_DATABASE)) session.preserveSessionInDatabase = true;

const redis = env.REDIS_URL ? await redisStorage(env.REDIS_URL) : null;

export const options = {
  database: pool,
  secret: env.BETTER_AUTH_SECRET ?? "compat-secret-0123456789-abcdefghijklmnop",
  baseURL: env.BASE_URL ?? `http://${host}:${port}`,
  emailAndPassword: { enabled: true },
  session,
  rateLimit: { enabled: on(env.RATE_LIMIT) },
  telemetry: { enabled: false },
  ...(redis ? { secondaryStorage: redis.storage } : {}),
};

const auth = betterAuth(options);

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  if (process.argv[2] === "migrate") {
    const { getMigrations } = await import("better-auth/db/migration");
    const m = await getMigrations(options);
    await m.runMigrations();
    await pool.end();
    redis?.redis.disconnect();
  } else {
    const server = http.createServer(toNodeHandler(auth));
    server.keepAliveTimeout = 65_000;
    server.listen(port, host, () => console.log(`better-auth listening on http://${host}:${port}`));
    const stop = () => {
      server.close();
      redis?.redis.disconnect();
      pool.end().finally(() => process.exit(0));
      setTimeout(() => process.exit(0), 2000).unref();
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  }
}
