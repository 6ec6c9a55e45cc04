#!/usr/bin/env node
// Serves the account switcher (this folder) and forwards <base path>/* to sessiond, so that
// the page and the API share one origin: no CORS, and sessiond's origin check sees the page's
// own origin. Node's standard library only.
//
//   SESSIOND_UPSTREAM=http://127.0.0.1:3000 PORT=8080 node examples/account-switcher/serve.mjs
//
// SESSIOND_UPSTREAM   where sessiond listens (default http://127.0.0.1:3000); give it
//                     SESSIOND_BASE_URL=<this page's URL> so that it trusts this origin
// SESSIOND_BASE_PATH  its base path (default /api/auth)
// HOST, PORT          where to listen (default 127.0.0.1:8080; PORT=0 picks a free port)
//
// Prints one line, "account switcher on http://HOST:PORT", once it listens.
import { createServer, request } from "node:http";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const upstream = new URL(process.env.SESSIOND_UPSTREAM || "http://127.0.0.1:3000");
const basePath = process.env.SESSIOND_BASE_PATH || "/api/auth";
const host = process.env.HOST || "127.0.0.1";
const port = Number(process.env.PORT ?? 8080);

const files = {
  "/": ["index.html", "text/html; charset=utf-8"],
  "/index.html": ["index.html", "text/html; charset=utf-8"],
  "/switcher.js": ["switcher.js", "text/javascript; charset=utf-8"],
  "/switcher.css": ["switcher.css", "text/css; charset=utf-8"],
};
const config = `window.SWITCHER_CONFIG = ${JSON.stringify({ basePath })};\n`;

const headers = {
  // Scripts, styles and fetch() from this origin only.
  "content-security-policy": [
    "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
    "connect-src 'self'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
  ].join("; "),
  "x-content-type-options": "nosniff",
  "referrer-policy": "strict-origin-when-cross-origin",
  "cache-control": "no-store",
};

/** Passes a request to sessiond unchanged (its Origin and Cookie included) and streams back the answer. */
function forward(req, res) {
  const up = request(
    { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
    (r) => {
      res.writeHead(r.statusCode, r.rawHeaders);
      r.pipe(res);
    },
  );
  up.on("error", () => res.writeHead(502, { "content-type": "application/json" })
    .end('{"code":"BAD_GATEWAY","message":"sessiond is unreachable"}'));
  req.pipe(up);
}

const server = createServer(async (req, res) => {
  const path = new URL(req.url, "http://x").pathname;
  if (path === basePath || path.startsWith(`${basePath}/`)) return forward(req, res);
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD" }).end();
    return;
  }
  let body, type;
  if (path === "/config.js") {
    [body, type] = [config, "text/javascript; charset=utf-8"];
  } else if (files[path]) {
    body = await readFile(join(root, files[path][0]));
    type = files[path][1];
  } else if (path === "/favicon.ico") {
    res.writeHead(204, headers).end();
    return;
  } else {
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8", ...headers }).end("not found\n");
    return;
  }
  res.writeHead(200, { "content-type": type, ...headers });
  res.end(req.method === "HEAD" ? undefined : body);
});

server.listen(port, host, () => {
  const { port: bound } = server.address();
  console.log(`account switcher on http://${host}:${bound} (sessiond at ${upstream.origin}${basePath})`);
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => server.close(() => process.exit(0)).closeAllConnections());
}
