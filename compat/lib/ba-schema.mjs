// Asks Better Auth's own migrator what it would change in $DATABASE_URL, with the options of
// compat/better-auth/server.mjs (same environment knobs), and prints it as JSON:
//   {"toBeCreated": ["table", …], "toBeAdded": ["table.column", …], "sql": "…"}
// Nothing is written. Used to check that a database migrated by sessiond is complete in Better
// Auth's eyes.
//
//   DATABASE_URL=postgres://… THEME_FIELD=1 node compat/lib/ba-schema.mjs

import { options } from "../better-auth/server.mjs";
import { getMigrations } from "better-auth/db/migration";

try {
  const m = await getMigrations(options);
  const out = {
    toBeCreated: m.toBeCreated.map((t) => t.table),
    toBeAdded: m.toBeAdded.flatMap((t) => Object.keys(t.fields).map((f) => `${t.table}.${f}`)),
    sql: (await m.compileMigrations()).trim(),
  };
  console.log(JSON.stringify(out));
} finally {
  await options.database.end();
}
