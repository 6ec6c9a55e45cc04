// compat/compare.mjs — the raw HTTP side-by-side comparison (~160 exchanges per run) — as part
// of the suite: the real Better Auth and sessiond on fresh databases of their own, with the same
// session options, one comparison per configuration. A run passes when every difference is
// listed in compat/expected-differences.json (plus, for a configuration that turns on a
// deliberate sessiond extension, the list of that extension); on failure the test prints
// compare.mjs's report of each unexpected difference: the request and both responses.
//
// The aged run labels dates relative to its age, so one pass must stay well under age / 2: it
// runs alone, first; the other configurations then run two at a time.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import {
  COMPAT_DIR, createDatabase, migrateBetterAuth, startBetterAuth, startSessiond, runNode, sessiondSupports,
} from "../lib/harness.mjs";

const EXPECTED = path.join(COMPAT_DIR, "expected-differences.json");
const EXPECTED_IMMEDIATE_REVOCATION = path.join(COMPAT_DIR, "expected-differences.immediate-revocation.json");
const HAS_IMMEDIATE_REVOCATION = sessiondSupports("SESSIOND_SESSION__COOKIE_CACHE__IMMEDIATE_REVOCATION");

const AGED = {
  // sessions made at the start are used again 60 s later: sliding refresh, needsRefresh,
  // SESSION_NOT_FRESH, rememberMe:false never refreshed. The pass must take under age / 2:
  // 20 s was too short on a machine busy with parallel builds (a pass took 18.7 s).
  name: "aged sessions (update_age = fresh_age = 30 s, --age 60)",
  options: { theme: true, updateAge: 30, freshAge: 30 },
  args: ["--age", "60"],
};

const OTHERS = [
  { name: "default session options", options: { theme: true } },
  { name: "deferred session refresh", options: { theme: true, deferRefresh: true } },
  // Better Auth's cache semantics: a revoked session's cache is served until max_age. (Every
  // strategy is compared through the official client in client.test.mjs; here, two.)
  {
    name: "cookie cache (compact)",
    options: { theme: true, cache: "compact", immediateRevocation: false },
  },
  // sessiond's default where it has immediate revocation (its deliberate differences listed
  // in the second file); Better Auth's semantics where it has not
  HAS_IMMEDIATE_REVOCATION
    ? {
      name: "cookie cache (jwe) with sessiond's immediate revocation",
      options: { theme: true, cache: "jwe", immediateRevocation: true },
      expected: [EXPECTED, EXPECTED_IMMEDIATE_REVOCATION],
    }
    : { name: "cookie cache (jwe)", options: { theme: true, cache: "jwe" } },
];

function comparison(cfg) {
  describe(cfg.name, { concurrency: false }, () => {
    const st = {};
    before(async () => {
      [st.baDb, st.sdDb] = await Promise.all([createDatabase("compare_ba"), createDatabase("compare_sd")]);
      await migrateBetterAuth(st.baDb.url, cfg.options);
      [st.ba, st.sd] = await Promise.all([
        startBetterAuth({ databaseUrl: st.baDb.url, options: cfg.options }),
        startSessiond({ databaseUrl: st.sdDb.url, options: cfg.options }),
      ]);
    });
    after(async () => {
      await Promise.all([st.ba?.stop(), st.sd?.stop()]);
      await Promise.all([st.baDb?.drop(), st.sdDb?.drop()]);
    });

    it("no difference beyond the expected ones", async (t) => {
      const expected = (cfg.expected ?? [EXPECTED]).flatMap((f) => ["--expected", f]);
      const r = await runNode(
        ["compat/compare.mjs", "--ref", st.ba.baseURL, "--target", st.sd.baseURL, ...expected, ...(cfg.args ?? [])],
        { timeoutMs: 120_000 });
      const out = r.stdout;
      const summary = out.trim().split("\n").filter((l) => /scenarios, \d+ with differences/.test(l)).pop() ?? "(no summary)";
      t.diagnostic(summary);
      if (r.code !== 0) {
        const i = out.indexOf("Distinct differences");
        const report = i >= 0 ? out.slice(i) : out.slice(-4000);
        assert.fail(`compare.mjs exited ${r.code}: ${summary}\n${report}\n${r.stderr}`);
      }
    });
  });
}

describe("[compare.mjs] expected differences", () => {
  for (const file of [EXPECTED, EXPECTED_IMMEDIATE_REVOCATION]) {
    it(`${path.basename(file)}: each entry names its scenario and gives a one-line reason`, () => {
      const list = JSON.parse(readFileSync(file, "utf8"));
      assert.ok(Array.isArray(list));
      for (const e of list) {
        assert.ok(e.scenario || e.scenarioPattern, `entry without scenario: ${JSON.stringify(e)}`);
        assert.equal(typeof e.reason, "string", `entry without reason: ${JSON.stringify(e)}`);
        assert.ok(e.reason.length > 10 && !e.reason.includes("\n"), `reason not one line: ${JSON.stringify(e)}`);
      }
    });
  }
});

describe("[compare.mjs] raw HTTP side by side", () => {
  comparison(AGED);
  describe("other configurations", { concurrency: 2 }, () => {
    for (const cfg of OTHERS) comparison(cfg);
  });
});
