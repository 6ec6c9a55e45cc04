// Better Auth's official client against sessiond and against the real Better Auth.
//
// The same scenario (every session method of `createAuthClient`; lib/scenario.mjs) runs against
// both servers, each on a database of its own, with no cookie cache and with each cache
// strategy. Every step records its outcome: HTTP status, `data` (keys, value types, fixed
// values; random values and dates replaced by labels), `error` (status, statusText, code,
// message) and every Set-Cookie line (name, attributes and their order, value by its form). One
// test per step then compares sessiond's outcome with Better Auth's; a few steps also check an
// absolute expectation, so that a scenario that went wrong on both sides still fails.

import { compareClients, clientTests } from "../lib/scenario.mjs";

const STRATEGIES = [null, "compact", "jwt", "jwe"];

clientTests(await compareClients({ options: { theme: true }, strategies: STRATEGIES }));
