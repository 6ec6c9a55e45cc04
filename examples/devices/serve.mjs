#!/usr/bin/env node
// Serves the devices page (this folder) on its own origin. Node's standard library only.
//
//   SESSIOND_URL=http://auth.example.test:3000 PORT=8080 node examples/devices/serve.mjs
//
// SESSIOND_URL        sessiond's public URL, as the browser reaches it (default http://localhost:3000)
// SESSIOND_BASE_PATH  its base path (default /api/auth)
// HOST, PORT          where to listen (default 127.0.0.1:8080; PORT=0 picks a free port)
//
// Prints one line, "devices page on http://HOST:PORT", once it listens.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const authUrl = (process.env.SESSIOND_URL || "http://localhost:3000").replace(/\/+$/, "");
const basePath = process.env.SESSIOND_BASE_PATH || "/api/auth";
const host = process.env.HOST || "127.0.0.1";
const port = Number(process.env.PORT ?? 8080);
const authOrigin = new URL(authUrl).origin;

const files = {
  "/": ["index.html", "text/html; charset=utf-8"],
  "/index.html": ["index.html", "text/html; charset=utf-8"],
  "/devices.js": ["devices.js", "text/javascript; charset=utf-8"],
  "/devices.css": ["devices.css", "text/css; charset=utf-8"],
};
const config = `window.DEVICES_CONFIG = ${JSON.stringify({ authUrl, basePath })};\n`;

const headers = {
  // Scripts and styles from this origin only; fetch() may reach sessiond and nothing else.
  "content-security-policy": [
    "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
    `connect-src ${authOrigin}`, "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
  ].join("; "),
  "x-content-type-options": "nosniff",
  "referrer-policy": "strict-origin-when-cross-origin",
  "cache-control": "no-store",
};

const server = createServer(async (req, res) => {
  const path = new URL(req.url, "http://x").pathname;
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
  console.log(`devices page on http://${host}:${bound} (sessiond at ${authUrl}${basePath})`);
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => server.close(() => process.exit(0)).closeAllConnections());
}
