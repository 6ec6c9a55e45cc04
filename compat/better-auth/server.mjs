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
//   BETTER_AUTH_SECRETS   "2:<new>,1:<old>": versioned secrets, read by Better Auth itself
//                         (BETTER_AUTH_SECRET, if also set, is then its legacy secret)
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
//   ADMIN                 1 = plugins: [admin()] (user role, banned, banReason, banExpires;
//                         session impersonatedBy; /admin/* routes)
//   USER_ADDITIONAL_FIELDS  JSON: user.additionalFields, in Better Auth's shape
//   GENERATE_ID           uuid or serial = advanced.database.generateId
//   ADVANCED_COOKIES      JSON: advanced.cookies ({"session_token": {"name", "attributes"}, …})
//   BEARER                1 = plugins: [bearer()] (Authorization: Bearer, set-auth-token)
//   JWT                   1 = plugins: [jwt()] (/jwks, /token, set-auth-jwt; table jwks)
//   MULTI_SESSION         1 = plugins: [multiSession()]; MULTI_SESSION_MAX = maximumSessions (5)
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

const json = (name) => {
  if (!env[name]) return undefined;
  try {
    return JSON.parse(env[name]);
  } catch (e) {
    console.error(`${name} is not JSON: ${e.message}`);
    process.exit(2);
  }
};

const user = {};
if (env.USER_ADDITIONAL_FIELDS) user.additionalFields = json("USER_ADDITIONAL_FIELDS");
const advanced = {};
if (env.GENERATE_ID) advanced.database = { generateId: env.GENERATE_ID };
if (env.ADVANCED_COOKIES) advanced.cookies = json("ADVANCED_COOKIES");
const plugins = [];
if (on(env.ADMIN)) {
  const { admin } = await import("better-auth/plugins/admin");
  plugins.push(admin());
}
if (on(env.BEARER)) {
  const { bearer } = await import("better-auth/plugins/bearer");
  plugins.push(bearer());
}
if (on(env.JWT)) {
  const { jwt } = await import("better-auth/plugins/jwt");
  plugins.push(jwt());
}
if (on(env.MULTI_SESSION)) {
  const { multiSession } = await import("better-auth/plugins/multi-session");
  plugins.push(multiSession(num(env.MULTI_SESSION_MAX) ? { maximumSessions: num(env.MULTI_SESSION_MAX) } : {}));
}

const redis = env.REDIS_URL ? await redisStorage(env.REDIS_URL) : null;

export const options = {
  database: pool,
  // with BETTER_AUTH_SECRETS alone, no legacy secret (a made-up one would be tried too)
  secret: env.BETTER_AUTH_SECRET ?? (env.BETTER_AUTH_SECRETS ? undefined : "compat-secret-0123456789-abcdefghijklmnop"),
  baseURL: env.BASE_URL ?? `http://${host}:${port}`,
  emailAndPassword: { enabled: true },
  session,
  // only when set: today's options are left exactly as they were
  ...(Object.keys(user).length ? { user } : {}),
  ...(Object.keys(advanced).length ? { advanced } : {}),
  ...(plugins.length ? { plugins } : {}),
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
