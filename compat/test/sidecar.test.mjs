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

import { describe } from "node:test";
import { MIGRATIONS, sidecarVariant } from "../lib/sidecar.mjs";

const CACHES = [null, "compact", "jwt", "jwe"];
const STORAGES = [
  { name: "postgres" },
  ...(process.env.COMPAT_REDIS_URL ? [{ name: "postgres+redis", redisUrl: process.env.COMPAT_REDIS_URL }] : []),
];
const BASE_OPTIONS = { theme: true };

// the variants share nothing but the PostgreSQL server: two at a time
describe("[sidecar]", { concurrency: 2 }, () => {
  for (const storage of STORAGES) {
    for (const migration of MIGRATIONS) {
      sidecarVariant({
        title: `[sidecar, ${storage.name}, ${migration.name}]`, options: BASE_OPTIONS, caches: CACHES, storage, migration,
      });
    }
  }
});
