#!/usr/bin/env python3
"""Turns bench/out/ (rows.tsv, sql.tsv, machine.tsv) into bench/RESULTS.md, or with
--terminal into the plain table run.sh prints.

    report.py [--terminal] OUT_DIR SESSIONS_PHASE_A [SESSIONS_PHASE_B]
"""
import csv
import json
import os
import sys

args = sys.argv[1:]
terminal = args and args[0] == "--terminal"
if terminal:
    args = args[1:]
out, sessions_a = args[0], args[1]
sessions_b = args[2] if len(args) > 2 else ""


def tsv(name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


runs = tsv("rows.tsv")
sql = tsv("sql.tsv")
redis_counts = tsv("redis.tsv")
machine = [l.rstrip("\n").split("\t", 1) for l in open(os.path.join(out, "machine.tsv"))]


def median_run(group):
    """A row's measured runs -> the run with the median req/s (the lower middle one of an even
    count), its peak RSS replaced by the highest of all the runs, and every run's req/s kept."""
    ordered = sorted(group, key=lambda r: float(r["rps"]))
    r = dict(ordered[(len(ordered) - 1) // 2])
    r["peak_rss_kib"] = str(max(int(x["peak_rss_kib"]) for x in group))
    r["all_rps"] = [float(x["rps"]) for x in group]
    for k in ("non2xx", "sock_err"):
        r[k] = str(sum(int(x[k]) for x in group))
    return r


groups = {}
for r in runs:
    groups.setdefault((r["key"], r["server"]), []).append(r)
rows = [median_run(g) for g in groups.values()]
by = {(r["key"], r["server"]): r for r in rows}
ceiling = by.get(("ceiling", "ceiling"))
ceiling_rps = float(ceiling["rps"]) if ceiling else None

# which Better Auth row a sessiond row is compared with
BA_KEY = {"fa_cache": "gs_compact", "fa_db": "gs_db", "gs_tls": "gs_db", "fa_redis": "gs_redis",
          "gs_db_pgb": "gs_db"}
# the row a row's "% of ceiling" is taken against: the bare axum handler, unless one of these
CEIL_OF = {"gs_redis": ("redis_get", "redis-benchmark"), "fa_redis": ("redis_get", "redis-benchmark"),
           "gs_db_pgb": ("pgbench", "pgbench"), "nginx_auth": ("nginx_noauth", "nginx")}
SERVERS = ("ceiling", "pgbench", "redis-benchmark", "nginx", "sessiond", "better-auth", "better-auth-rs")
SECTIONS = [
    ("Throughput and latency (about %s sessions stored)" % sessions_a,
     ["ceiling", "gs_db", "gs_tls", "gs_compact", "gs_jwt", "gs_jwe", "fa_cache", "fa_db", "spread_1k", "list",
      "signin", "signin_unknown", "signin64", "gs_mixed"]),
    ("Against PostgreSQL and Redis themselves, and behind nginx (each group measured in turn)",
     ["pgbench", "gs_db_pgb", "redis_get", "gs_redis", "fa_redis", "nginx_noauth", "nginx_auth"]),
    ("Scale (%s sessions stored)" % (sessions_b or "1,000,000"),
     ["gs_db_ref", "gs_db_1m", "spread_1k_ref", "spread_1m_1k", "spread_1m", "list_1k"]),
]


def rps(key, server):
    r = by.get((key, server))
    return float(r["rps"]) if r else None


def mib(kib):
    return f"{int(kib) / 1024:.1f}" if kib and kib != "0" else "?"


def times(r, peer):
    """r's req/s against the same path on a peer (ratio of medians), "1×" on the peer itself."""
    if r["server"] == peer:
        return "1×"
    if r["server"] != "sessiond":
        return "–"
    other = rps(BA_KEY.get(r["key"], r["key"]), peer)
    return f"{float(r['rps']) / other:.1f}×" if other else "–"


def row_cells(r):
    ck, cs = CEIL_OF.get(r["key"], ("ceiling", "ceiling"))
    ceil = rps(ck, cs)
    own = r["server"] in ("ceiling", "pgbench", "redis-benchmark") or r["key"] == "nginx_noauth"
    pct = f"{100 * float(r['rps']) / ceil:.0f} %" if ceil and not own else "–"
    errs = int(r["non2xx"]) + int(r["sock_err"])
    cpu = f"{r['server_cpu_pct']}/{r['pg_cpu_pct']}/{r['other_cpu_pct']}"
    spread = "–"
    # a row may complete nothing in a run (64 queued sign-ins on a loaded machine)
    if len(r["all_rps"]) > 1 and float(r["rps"]) > 0:
        spread = f"{min(r['all_rps']):,.0f}–{max(r['all_rps']):,.0f}"
    return [r["path"], r["server"], f"{float(r['rps']):,.0f}", spread, r["p50_ms"], r["p99_ms"],
            mib(r["peak_rss_kib"]), times(r, "better-auth"), times(r, "better-auth-rs"), pct, cpu,
            r["conns"], str(errs)]


HEAD = ["path", "server", "req/s (median)", "min–max", "p50 ms", "p99 ms", "peak RSS MiB", "× Better Auth",
        "× better-auth-rs", "% of ceiling", "CPU % srv/pg/other", "conns", "errors"]


def md_table(head, body):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(b) + " |" for b in body]
    return "\n".join(lines)


def text_table(head, body):
    w = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(c.ljust(w[i]) if i < 2 else c.rjust(w[i]) for i, c in enumerate(cells))
    return "\n".join([fmt(head), "  ".join("-" * x for x in w)] + [fmt(b) for b in body])


def section_rows(keys):
    body = []
    for k in keys:
        for server in SERVERS:
            r = by.get((k, server))
            if r:
                body.append(row_cells(r))
    return body


def mixed_signins(server):
    path = os.path.join(out, f"wrk-gs_mixed-{server}-signins.txt")
    if not os.path.exists(path):
        return None
    for l in open(path):
        if l.startswith("WRKJSON "):
            return json.loads(l[8:])["rps"]
    return None


# ---- targets (bench/README.md, "Performance targets")
targets = []


def target(what, value, ok):
    # every figure here is a median (of runs, or of per-round ratios): a target is met only when its median is
    targets.append([what, value, "n/a" if ok is None else ("yes" if ok else "**no**" if not terminal else "NO")])


def ratio(a, b):
    return a / b if a is not None and b else None


def paired(a, b, server_b="sessiond", server_a="sessiond"):
    """sessiond's row a against row b (of server_b), two rows measured in turn (run.sh's
    run_interleaved): the median of the per-round ratios, each between two runs made seconds
    apart, so that the machine's drift cancels, and the ratios themselves (None, [] if either
    row is missing)."""
    ra = {r["rep"]: float(r["rps"]) for r in runs if (r["key"], r["server"]) == (a, server_a)}
    rb = {r["rep"]: float(r["rps"]) for r in runs if (r["key"], r["server"]) == (b, server_b)}
    xs = sorted(ra[k] / rb[k] for k in ra.keys() & rb.keys() if rb[k])
    return (xs[(len(xs) - 1) // 2], xs) if xs else (None, [])


def rounds(xs):
    return f" (rounds: {', '.join(f'{100 * x:.0f}' for x in xs)} %)" if len(xs) > 1 else ""


for k, name in (("gs_compact", "compact"), ("gs_jwt", "jwt"), ("gs_jwe", "jwe")):
    x = ratio(rps(k, "sessiond"), rps(k, "better-auth"))
    if x is not None:
        target(f"get-session {name} cache hit ≥ 30× Better Auth's", f"{x:.1f}×", x >= 30)
x, xs = paired("gs_compact", "ceiling", "ceiling")
if x is not None:
    target("get-session compact cache hit ≥ 75 % of the axum ceiling", f"{100 * x:.0f} %{rounds(xs)}", x >= 0.75)
x = ratio(rps("gs_db", "sessiond"), rps("gs_db", "better-auth"))
if x is not None:
    target("get-session database path ≥ 15× Better Auth's", f"{x:.1f}×", x >= 15)
for s in sql:
    if s["key"] in ("gs_db", "fa_db") and s["server"] == "sessiond":
        rt = float(s["round_trips_per_req"])
        target(f"{s['path']}: ≤ 1 SQL round trip per call (no refresh due)",
               f"{rt:g} ({s['statements_per_req']} statements + {s['pings_per_req']} pool pings)", rt <= 1.0)
for fa, gs in (("fa_cache", "gs_compact"), ("fa_db", "gs_db")):
    x, xs = paired(fa, gs)
    if x is not None:
        target(f"forward-auth as fast as get-session ({'cache' if fa == 'fa_cache' else 'database'} path, ≥ 90 %)",
               f"{100 * x:.0f} %{rounds(xs)}", x >= 0.9)
for k, limit in (("gs_compact", 5), ("gs_jwt", 5), ("gs_jwe", 5), ("fa_cache", 5), ("gs_db", 20), ("fa_db", 20),
                 ("gs_mixed", 20)):
    r = by.get((k, "sessiond"))
    if r:
        target(f"p99 {r['path']} ≤ {limit} ms", f"{float(r['p99_ms']):.1f} ms", float(r["p99_ms"]) <= limit)
load = [r for r in rows if r["server"] == "sessiond" and r["key"] not in ("signin", "signin_unknown", "signin64", "gs_mixed", "list_1k")]
if load:
    peak = max(int(r["peak_rss_kib"]) for r in load)
    target("sessiond peak RSS ≤ 64 MiB under get-session/forward-auth load", f"{peak / 1024:.1f} MiB",
           peak <= 64 * 1024)
hashing = [r for k in ("gs_mixed", "signin", "signin_unknown", "signin64") if (r := by.get((k, "sessiond")))]
if hashing:
    peak = max(int(r["peak_rss_kib"]) for r in hashing)
    target("sessiond peak RSS ≤ 64 MiB while sign-ins hash passwords", f"{peak / 1024:.1f} MiB", peak <= 64 * 1024)
for a, b, what in (("gs_db_1m", "gs_db_ref", "one hot session"),
                   ("spread_1m_1k", "spread_1k_ref", "1,000 distinct sessions")):
    x, xs = paired(a, b)
    if x is not None:
        target(f"1M sessions stored: get-session ≥ 80 % of the 1,000-session figure ({what})",
               f"{100 * x:.0f} %{rounds(xs)}", x >= 0.8)
x, xs = paired("gs_db_pgb", "pgbench", "pgbench")
if x is not None:
    target("get-session database path ≥ 75 % of pgbench -S -M prepared", f"{100 * x:.0f} %{rounds(xs)}", x >= 0.75)
for k, what in (("gs_redis", "get-session"), ("fa_redis", "forward-auth")):
    x, xs = paired(k, "gs_redis", "better-auth")
    if x is not None:
        target(f"{what}, Redis secondary storage ≥ 20× Better Auth's get-session", f"{x:.1f}×{rounds(xs)}", x >= 20)
for c in redis_counts:
    if c["server"] == "sessiond":
        m = float(c["commands_per_req"])
        target(f"{c['path']}, Redis: ≤ 1 Redis round trip per call (commands counted: ≥ round trips)",
               f"{m:g} ({c['commands']})", m <= 1.0)
x, xs = paired("nginx_auth", "nginx_noauth", "nginx", "nginx")
if x is not None:
    target("nginx: the auth subrequest costs ≤ 35 % of the no-auth throughput (compact cache)",
           f"{100 * (1 - x):.0f} %{rounds([1 - v for v in xs][::-1])}", 1 - x <= 0.35)
# A larger working set, not a larger table: reported beside the targets, not one of them.
x = ratio(rps("spread_1m", "sessiond"), rps("spread_1k_ref", "sessiond"))
if x is not None:
    targets.append(["(not a target) 1M sessions stored, 50,000 distinct sessions requested, against 1,000 of "
                    "1,000", f"{100 * x:.0f} %", "–"])

def machine_cpu():
    return dict(machine).get("cpu", "?").split(" x ")[0] + " cores"


# ---- output
mixed = {s: mixed_signins(s) for s in ("sessiond", "better-auth")}
mixed_note = ", ".join(f"{s} {v:.0f} sign-ins/s" for s, v in mixed.items() if v is not None)

if terminal:
    for title, keys in SECTIONS:
        body = section_rows(keys)
        if body:
            print(f"\n{title}\n")
            print(text_table(HEAD, body))
    if mixed_note:
        print(f"\n(sign-ins completed during the mixed rows: {mixed_note})")
    others = sorted(float(r["other_cpu_pct"]) for r in rows)
    if others and others[len(others) // 2] > 20:
        print(f"\nNOISY RUN: other processes used a median {others[len(others) // 2]:.0f} % of one core "
              "during the measured runs (CPU 'other' column).")
    if sql:
        print("\nSQL round trips per request (sequential, through bench/pgcount.py)\n")
        print(text_table(["path", "server", "round trips", "statements", "pool pings"],
                         [[s["path"], s["server"], s["round_trips_per_req"], s["statements_per_req"],
                           s["pings_per_req"]] for s in sql]))
    if redis_counts:
        print("\nRedis commands per request (sequential, INFO commandstats)\n")
        print(text_table(["path", "server", "commands", "which"],
                         [[c["path"], c["server"], c["commands_per_req"], c["commands"]] for c in redis_counts]))
    if targets:
        print("\nPerformance targets (bench/README.md)\n")
        print(text_table(["target", "measured (median)", "met"], targets))
    sys.exit(0)

p = print
p("# sessiond benchmark results")
p()
p("Generated by `bash bench/run.sh` (method and caveats in [README.md](README.md)); "
  "raw wrk output and SQL traces of the run are in `bench/out/` (not committed).")
p()
others = sorted(float(r["other_cpu_pct"]) for r in rows)
if others:
    med = others[len(others) // 2]
    if med > 20:
        p(f"**This run was noisy:** other processes used a median {med:.0f} % of one core during the measured "
          f"runs (the *other* CPU column), on a machine with {machine_cpu()} — treat the figures as "
          "indicative, and compare rows with a low *other* only.")
    else:
        p(f"Quiet run: other processes used a median {med:.0f} % of one core during the measured runs.")
    p()
p("## Machine")
p()
p(md_table(["", ""], [[k, v] for k, v in machine]))
p()
p("All servers, PostgreSQL and wrk share the same cores. **CPU % srv/pg/other** is CPU time during the "
  "measured run as % of one core: the server process, its PostgreSQL backends, and everything else on "
  "the machine except wrk (other builds, tests, servers). A large *other* means the row is noisy. "
  "Each row was measured several times back to back (see *settings*); the table shows the run with the "
  "median req/s, and **min–max** the lowest and highest req/s of its runs. "
  "**Peak RSS** is the server's highest VmHWM over its measured runs (reset after the warm-up). "
  "**× Better Auth** compares with Better Auth on the same path (forward-auth with Better Auth's "
  "get-session on that path), **× better-auth-rs** with the Rust port on the same path; **% of ceiling** "
  "compares with the bare axum handler, or for the Redis rows with `redis-benchmark`'s GET, for the database "
  "row measured with pgbench with pgbench, for nginx with auth with nginx without. Every target below is judged on a median (of a row's runs, or of the per-round ratios of "
  "rows measured in turn).")
for title, keys in SECTIONS:
    body = section_rows(keys)
    if body:
        p()
        p(f"## {title}")
        p()
        p(md_table(HEAD, body))
if mixed_note:
    p()
    p(f"Sign-ins completed per second during the *while sign-ins run* rows: {mixed_note}.")
if ("spread_1m", "sessiond") in by:
    p()
    p("The scale rows change one thing at a time: *1M sessions stored* and *1,000 distinct of 1M* send the "
      "requests of the two *measured in turn* rows to a table a thousand times larger. Those two rows are a "
      "second sessiond on a copy of the database taken before the bulk insert, measured in alternation with "
      "the 1M rows so that the machine's drift over minutes does not decide the ratio. "
      "*50000 distinct of 1M* also widens the working set fifty-fold: its rows and index pages no longer fit "
      "PostgreSQL's `shared_buffers` (see *postgres* above), so it measures the database's buffer cache "
      "as much as sessiond.")
if ("list_1k", "better-auth") in by:
    p()
    p("Better Auth's `list-sessions` returns at most 100 sessions (its adapters' default `findMany` limit, "
      "`advanced.database.defaultFindManyLimit`), so in the 1,000-session row it does a tenth of sessiond's work.")
if sql:
    p()
    p("## SQL round trips per request")
    p()
    p("Sequential requests on one connection after 20 warm-up requests, each server pointed at a counting "
      "proxy (`bench/pgcount.py`). A round trip is one Sync or simple Query message (the client then waits "
      "for ReadyForQuery); a *pool ping* is a Sync with no statement, the liveness check sqlx's pool makes "
      "on every acquire (`test_before_acquire`, on by default).")
    p()
    p(md_table(["path", "server", "round trips", "statements", "pool pings", "statements prepared in the window"],
               [[s["path"], s["server"], s["round_trips_per_req"], s["statements_per_req"], s["pings_per_req"],
                 s["statements"].replace("|", "\\|")[:400]] for s in sql]))
if redis_counts:
    p()
    p("## Redis commands per request")
    p()
    p("Sequential requests on one connection against the private Redis of the Redis rows, counted with "
      "`INFO commandstats` before and after (INFO itself left out). A round trip carries at least one "
      "command, so commands per request bound round trips from above.")
    p()
    p(md_table(["path", "server", "commands per request", "which"],
               [[c["path"], c["server"], c["commands_per_req"], c["commands"]] for c in redis_counts]))
if targets:
    p()
    p("## Performance targets (bench/README.md)")
    p()
    p(md_table(["target", "measured (median)", "met"], targets))
