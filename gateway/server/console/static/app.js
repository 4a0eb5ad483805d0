// The console's shell: who is signed in, the views by URL fragment, notices, sign-out.

import {ApiError, get, setCsrf} from "./api.js";
import {clear, h} from "./dom.js";
import {renderRenewals} from "./charts.js";
import {renderInventory} from "./inventory.js";
import {renderAudit, renderQueue, renderStatus} from "./views.js";

const VIEWS = {
  queue: ["Approval queue", renderQueue],
  inventory: ["Certificates", renderInventory],
  audit: ["Audit trail", renderAudit],
  renewals: ["Certificates due for renewal", renderRenewals],
  status: ["Status", renderStatus],
};
const ROLES = {viewer: 1, approver: 2, admin: 3};

const view = document.getElementById("view");
const notice = document.getElementById("notice");
let session = null;

/** A short message under the header; errors stay until the next one. */
export function notify(message, isError = false) {
  notice.textContent = message;
  notice.className = isError ? "error" : "";
  notice.hidden = !message;
}

function describe(exc) {
  if (exc instanceof ApiError) return `${exc.message} (HTTP ${exc.status})`;
  return exc && exc.message ? exc.message : String(exc);
}

const context = {
  notify,
  describe,
  can(role) {
    return session !== null && (ROLES[session.role] || 0) >= ROLES[role];
  },
  get role() {
    return session ? session.role : "";
  },
  refresh() {
    show().then(() => view.focus());  // keyboard users land on the redrawn view
  },
};

async function show() {
  const name = (window.location.hash || "#queue").slice(1);
  const [title, render] = VIEWS[name] || VIEWS.queue;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${title} · certgate console`;
  clear(view).append(h("h1", {}, title));
  const body = h("div", {"aria-busy": "true"}, h("p", {class: "muted"}, "Loading…"));
  view.append(body);
  try {
    const content = await render(context);
    clear(body).append(content);
  } catch (exc) {
    clear(body).append(h("p", {class: "error", role: "alert"}, `Could not load: ${describe(exc)}`));
  } finally {
    body.removeAttribute("aria-busy");
  }
}

async function signOut() {
  await fetch("/console/logout", {
    method: "POST",
    credentials: "same-origin",
    headers: {"X-CSRF-Token": session ? session.csrf : ""},
  });
  window.location.assign("/console/");
}

async function start() {
  try {
    session = await get("/whoami");
  } catch (exc) {
    notify(`Could not read the session: ${describe(exc)}`, true);
    return;
  }
  setCsrf(session.csrf);
  const who = document.getElementById("whoami");
  who.textContent = `${session.name} (${session.role})`;
  document.getElementById("signout").addEventListener("click", signOut);
  window.addEventListener("hashchange", () => {
    notify("");
    show().then(() => view.focus());
  });
  await show();
}

start();
