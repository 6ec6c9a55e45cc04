// "Your devices": a page on one origin managing sessions held by sessiond on another.
//
// Plain fetch with credentials: "include". The session cookie belongs to sessiond's origin and
// is HttpOnly: this script never sees it, the browser attaches it to requests to sessiond, and
// sessiond answers with CORS headers granting this (trusted) origin. No build step, no library.
"use strict";

const CONFIG = window.DEVICES_CONFIG || {};
const AUTH_URL = (CONFIG.authUrl || "http://localhost:3000").replace(/\/+$/, "");
const API = AUTH_URL + (CONFIG.basePath || "/api/auth");

// ---------------------------------------------------------------------------------------------
// sessiond's API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code || "";
  }
}

/** Calls sessiond; resolves to the JSON body (or null), rejects with ApiError on 4xx/5xx. */
async function api(path, body) {
  const init = { method: "GET", credentials: "include", headers: { accept: "application/json" } };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(API + path, init);
  } catch (e) {
    // A network failure or a CORS refusal: the browser hides which.
    throw new ApiError(0, "NETWORK", `Cannot reach ${AUTH_URL} (${e.message})`);
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    throw new ApiError(res.status, data && data.code, (data && data.message) || res.statusText);
  }
  return data;
}

const auth = {
  session: () => api("/get-session"),
  signUp: (name, email, password) => api("/sign-up/email", { name, email, password }),
  signIn: (email, password, rememberMe) => api("/sign-in/email", { email, password, rememberMe }),
  signOut: () => api("/sign-out", {}),
  listSessions: () => api("/list-sessions"),
  // By id: the device list never needs another session's token (sessiond's
  // session.list_sessions_tokens = "none" leaves them out).
  revokeSession: (id) => api("/revoke-session", { id }),
  revokeOtherSessions: () => api("/revoke-other-sessions", {}),
};

// ---------------------------------------------------------------------------------------------
// Presentation helpers

const $ = (id) => document.getElementById(id);

/** Builds an element: h("li", {class: "x", dataset: {id: 1}}, "text", child). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "onclick") el.addEventListener("click", v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Browser, system and kind of device from a user agent string. */
function describeAgent(ua) {
  ua = ua || "";
  const browser = /Edg\//.test(ua) ? "Edge"
    : /OPR\//.test(ua) ? "Opera"
    : /HeadlessChrome\//.test(ua) ? "Headless Chrome"
    : /Firefox\/|FxiOS\//.test(ua) ? "Firefox"
    : /Chrome\/|CriOS\//.test(ua) ? "Chrome"
    : /Version\/.*Safari\//.test(ua) ? "Safari"
    : /^curl\//.test(ua) ? "curl"
    : ua ? "Unknown browser" : "Unknown device";
  const os = /iPhone/.test(ua) ? "iPhone"
    : /iPad/.test(ua) ? "iPad"
    : /Android/.test(ua) ? "Android"
    : /Windows/.test(ua) ? "Windows"
    : /CrOS/.test(ua) ? "ChromeOS"
    : /Macintosh|Mac OS X/.test(ua) ? "macOS"
    : /Linux/.test(ua) ? "Linux"
    : "";
  const kind = /iPhone|Android.*Mobile/.test(ua) ? "phone" : /iPad|Android/.test(ua) ? "tablet" : "desktop";
  return { name: os ? `${browser} on ${os}` : browser, kind };
}

const ICONS = {
  desktop: '<svg viewBox="0 0 24 24" aria-hidden="true"><rect x="3" y="4" width="18" height="12" rx="2"/><path d="M2 20h20M9 16l-1 4M15 16l1 4"/></svg>',
  phone: '<svg viewBox="0 0 24 24" aria-hidden="true"><rect x="7" y="2" width="10" height="20" rx="2"/><path d="M11 18h2"/></svg>',
  tablet: '<svg viewBox="0 0 24 24" aria-hidden="true"><rect x="4" y="2" width="16" height="20" rx="2"/><path d="M11 18h2"/></svg>',
};

function icon(kind) {
  const span = h("span", { class: `device-icon ${kind}` });
  span.innerHTML = ICONS[kind] || ICONS.desktop; // constant markup, never data
  return span;
}

const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

function ago(iso) {
  const s = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
  const a = Math.abs(s);
  if (a < 45) return s <= 0 ? "just now" : "in a few seconds";
  for (const [unit, size] of [["day", 86400], ["hour", 3600], ["minute", 60]]) {
    if (a >= size) return relative.format(Math.round(s / size), unit);
  }
  return relative.format(s, "second");
}

/** <time> with a relative label and the exact time on hover. */
function when(iso, mode) {
  const label = mode === "absolute" ? absolute.format(new Date(iso)) : ago(iso);
  return h("time", { datetime: iso, title: absolute.format(new Date(iso)) }, label);
}

let toastTimer;
function toast(message, kind) {
  const t = $("toast");
  t.textContent = message;
  t.className = `toast ${kind || ""}`;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
}

function showError(el, err) {
  el.textContent = err ? err.message : "";
  el.hidden = !err;
}

function busy(button, on) {
  if (button) button.disabled = on;
  document.body.classList.toggle("busy", on);
}

// ---------------------------------------------------------------------------------------------
// Views

let current = null; // {session, user} from get-session

function show(view) {
  $("loading").hidden = true;
  $("auth-view").hidden = view !== "auth";
  $("devices-view").hidden = view !== "devices";
  $("who").hidden = view !== "devices";
  document.body.dataset.view = view;
}

function showAuth(message) {
  current = null;
  $("devices").replaceChildren();
  $("device-count").textContent = "";
  show("auth");
  showError($("auth-error"), message ? { message } : null);
}

function selectTab(which) {
  const signUp = which === "sign-up";
  $("tab-sign-in").setAttribute("aria-selected", String(!signUp));
  $("tab-sign-up").setAttribute("aria-selected", String(signUp));
  $("sign-in-form").hidden = signUp;
  $("sign-up-form").hidden = !signUp;
  showError($("auth-error"), null);
}

function renderCurrent() {
  const { session, user } = current;
  $("who-name").textContent = user.name;
  $("who-email").textContent = user.email;
  $("who-avatar").textContent = (user.name || user.email).trim().slice(0, 1).toUpperCase();
  $("current-device").replaceChildren(describeAgent(session.userAgent).name);
  $("current-device").title = session.userAgent || "";
  $("current-ip").textContent = session.ipAddress || "not recorded";
  $("current-created").replaceChildren(when(session.createdAt, "absolute"));
  $("current-expires").replaceChildren(when(session.expiresAt, "absolute"));
}

function renderDevices(sessions) {
  const mine = current.session.id;
  // This device first, then the most recently active.
  sessions.sort((a, b) => (b.id === mine) - (a.id === mine) || new Date(b.updatedAt) - new Date(a.updatedAt));
  $("device-count").textContent = String(sessions.length);
  $("revoke-others").disabled = sessions.length < 2;
  $("devices").replaceChildren(...sessions.map((s) => {
    const agent = describeAgent(s.userAgent);
    const isMine = s.id === mine;
    return h("li", { class: `device${isMine ? " mine" : ""}`, dataset: { sessionId: s.id, current: String(isMine) } },
      icon(agent.kind),
      h("div", { class: "device-main" },
        h("div", { class: "device-name" }, agent.name, isMine && h("span", { class: "badge" }, "This device")),
        h("div", { class: "device-ua", title: s.userAgent || "" }, s.userAgent || "no user agent"),
        h("ul", { class: "device-facts" },
          h("li", { class: "ip" }, h("span", { class: "k" }, "IP "), s.ipAddress || "not recorded"),
          h("li", { class: "created" }, h("span", { class: "k" }, "Signed in "), when(s.createdAt)),
          h("li", { class: "updated" }, h("span", { class: "k" }, "Refreshed "), when(s.updatedAt)),
          h("li", { class: "expires" }, h("span", { class: "k" }, "Expires "), when(s.expiresAt)))),
      isMine
        ? h("button", { type: "button", class: "btn btn-ghost", onclick: signOut }, "Sign out")
        : h("button", { type: "button", class: "btn btn-danger-ghost revoke", onclick: (e) => revoke(e.currentTarget, s) }, "Sign out device"));
  }));
}

/** Reloads this session and the device list; drops to the sign-in form when signed out. */
async function refresh() {
  let data;
  try {
    data = await auth.session();
  } catch (e) {
    show("auth");
    showError($("auth-error"), e);
    return;
  }
  if (!data) return showAuth(current ? "Your session has ended. Sign in again." : undefined);
  let sessions = null;
  let listError = null;
  try {
    sessions = await auth.listSessions();
  } catch (e) {
    if (e.status === 401) return showAuth("Your session has ended. Sign in again.");
    if (e.code === "SESSION_NOT_FRESH") e.message = "Sign in again to manage your devices.";
    listError = e;
  }
  // Everything at once: never a new session next to an old list.
  current = data;
  renderCurrent();
  if (sessions) renderDevices(sessions);
  else $("devices").replaceChildren();
  showError($("devices-error"), listError);
  show("devices");
}

async function revoke(button, s) {
  busy(button, true);
  try {
    await auth.revokeSession(s.id);
    toast(`Signed out ${describeAgent(s.userAgent).name}.`, "ok");
  } catch (e) {
    toast(e.message, "error");
  } finally {
    busy(button, false);
  }
  await refresh();
}

async function revokeOthers(e) {
  const button = e.currentTarget;
  busy(button, true);
  try {
    await auth.revokeOtherSessions();
    toast("Signed out of every other device.", "ok");
  } catch (err) {
    toast(err.message, "error");
  } finally {
    busy(button, false);
  }
  await refresh();
}

async function signOut() {
  try {
    await auth.signOut();
  } catch (e) {
    if (e.status !== 401) return toast(e.message, "error");
  }
  showAuth();
  toast("Signed out.", "ok");
}

async function submitAuth(e, run) {
  e.preventDefault();
  const form = e.currentTarget;
  const button = form.querySelector("button[type=submit]");
  busy(button, true);
  try {
    await run(new FormData(form));
    form.reset();
    $("toast").hidden = true;
    await refresh();
  } catch (err) {
    showError($("auth-error"), err);
  } finally {
    busy(button, false);
  }
}

// ---------------------------------------------------------------------------------------------

$("auth-url").textContent = API;
$("tab-sign-in").addEventListener("click", () => selectTab("sign-in"));
$("tab-sign-up").addEventListener("click", () => selectTab("sign-up"));
$("sign-in-form").addEventListener("submit", (e) => submitAuth(e, (f) =>
  auth.signIn(f.get("email"), f.get("password"), f.get("rememberMe") === "on")));
$("sign-up-form").addEventListener("submit", (e) => submitAuth(e, (f) =>
  auth.signUp(f.get("name"), f.get("email"), f.get("password"))));
$("refresh").addEventListener("click", refresh);
$("revoke-others").addEventListener("click", revokeOthers);
$("sign-out").addEventListener("click", signOut);
refresh();
