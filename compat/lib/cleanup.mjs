// Cleanup for compat/run.sh: drops every database of a run (compat_<run id>_…) that a test
// process left behind. With --check, only makes sure PostgreSQL answers (exit 3 if not).
//
//   node compat/lib/cleanup.mjs RUN_ID
//   node compat/lib/cleanup.mjs --check

import pg from "pg";
import { PG_ADMIN_URL, dropRunDatabases } from "./harness.mjs";

const arg = process.argv[2];
if (arg === "--check") {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 5000 });
  try {
    await c.connect();
    await c.query("select 1");
    await c.end();
  } catch (e) {
    console.error(`compat: PostgreSQL is not reachable at ${PG_ADMIN_URL}: ${e.message}`);
    process.exit(3);
  }
} else if (arg) {
  const dropped = await dropRunDatabases(arg.toLowerCase().replace(/[^a-z0-9]/g, ""));
  if (dropped.length) console.error(`compat: dropped ${dropped.length} database(s) left by the run: ${dropped.join(", ")}`);
} else {
  console.error("usage: node compat/lib/cleanup.mjs RUN_ID | --check");
  process.exit(2);
}
