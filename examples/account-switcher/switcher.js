// The account switcher: several accounts signed in at once in one browser, through sessiond's
// multi-session plugin (Better Auth's multiSession() routes). Plain fetch(); the session
// cookies are HttpOnly and never read here. The page and the API share one origin (serve.mjs).
"use strict";

const API = (window.SWITCHER_CONFIG && window.SWITCHER_CONFIG.basePath) || "/api/auth";
const $ = (id) => document.getElementById(id);

/** A JSON call to sessiond: { ok, status, data }. */
async function call(method, path, body) {
  const res = await fetch(`${API}${path}`, {
    method,
    credentials: "same-origin",
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  let data = null;
  try { data = await res.json(); } catch { /* empty body */ }
  return { ok: res.ok, status: res.status, data };
}

function say(text, isError = false) {
  const s = $("status");
  s.textContent = text;
  s.className = isError ? "error" : "";
}

function failure(what, r) {
  const why = (r.data && (r.data.message || r.data.code)) || `HTTP ${r.status}`;
  say(`${what} failed: ${why}`, true);
}

function initials(user) {
  return (user.name || user.email || "?").trim().slice(0, 1).toUpperCase();
}

function button(className, text, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

/** One row: who, whether it is the active account, Switch and Sign out buttons. */
function row(entry, activeToken) {
  const { session, user } = entry;
  const li = document.createElement("li");
  li.className = "account";
  li.dataset.email = user.email;
  li.dataset.active = String(session.token === activeToken);
  const avatar = document.createElement("div");
  avatar.className = "avatar";
  avatar.textContent = initials(user);
  const who = document.createElement("div");
  who.className = "who";
  const name = document.createElement("strong");
  name.textContent = user.name || user.email;
  const email = document.createElement("span");
  email.textContent = user.email;
  who.append(name, email);
  li.append(avatar, who);
  if (session.token === activeToken) {
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = "active";
    li.append(badge);
  } else {
    li.append(button("switch secondary", "Switch", () => act("Switching", "/multi-session/set-active", session.token)));
  }
  li.append(button("revoke danger", "Sign out", () => act("Signing out of the account", "/multi-session/revoke", session.token)));
  return li;
}

/** Reads the active session and the browser's accounts, and draws them. */
async function refresh() {
  const [current, list] = await Promise.all([call("GET", "/get-session"), call("GET", "/multi-session/list-device-sessions")]);
  const active = current.ok && current.data ? current.data : null;
  const accounts = list.ok && Array.isArray(list.data) ? list.data : [];
  $("active-account").textContent = active ? `${active.user.name || active.user.email} (${active.user.email})` : "Nobody is signed in.";
  document.body.dataset.active = active ? active.user.email : "";
  const ul = $("accounts");
  ul.replaceChildren(...accounts.map((e) => row(e, active && active.session.token)));
  $("no-accounts").hidden = accounts.length > 0;
  $("sign-out-all").hidden = !active && accounts.length === 0;
  document.body.dataset.view = active ? "signed-in" : "signed-out";
  document.body.dataset.accounts = String(accounts.length);
}

async function act(what, path, sessionToken) {
  const r = await call("POST", path, { sessionToken });
  if (!r.ok) failure(what, r);
  else say(`${what}: done.`);
  await refresh();
}

async function addAccount(kind) {
  const email = $("email").value.trim();
  const password = $("password").value;
  const name = $("name").value.trim() || email.split("@")[0];
  const r = kind === "up"
    ? await call("POST", "/sign-up/email", { name, email, password })
    : await call("POST", "/sign-in/email", { email, password });
  if (!r.ok) {
    failure(kind === "up" ? "Creating the account" : "Signing in", r);
    return;
  }
  $("add-form").reset();
  say(`Signed in as ${email}.`);
  await refresh();
}

$("add-form").addEventListener("submit", (e) => {
  e.preventDefault();
  addAccount("in");
});
$("sign-up").addEventListener("click", () => {
  if ($("add-form").reportValidity()) addAccount("up");
});
$("sign-out-all").addEventListener("click", async () => {
  const r = await call("POST", "/sign-out", {});
  if (!r.ok) failure("Signing out", r);
  else say("Signed out of every account.");
  await refresh();
});

refresh().catch((e) => say(`Could not reach sessiond: ${e.message}`, true));
