// The approval queue, the audit trail and the status view.

import {get, items, post} from "./api.js";
import {badge, facts, field, h, plain, when} from "./dom.js";

function keyText(key) {
  if (!key) return "";
  if (typeof key === "string") return key;
  return [key.type, key.size ? `${key.size} bits` : "", key.curve || ""].filter(Boolean).join(" ");
}

function requesterText(requester, authMethod) {
  if (!requester) return "";
  if (typeof requester === "string") return authMethod ? `${requester} (${authMethod})` : requester;
  const how = requester.auth_method ? ` (${requester.auth_method})` : "";
  return `${requester.principal || "?"}${how}`;
}

function rulesOf(detail) {
  for (const key of ["template_rules", "rules", "template_summary"]) {
    if (detail[key]) return detail[key];
  }
  const template = detail.template;
  if (!template || typeof template !== "object") return null;
  return template.summary || template;
}

function templateName(detail, item) {
  if (typeof detail.template === "string") return detail.template;
  const template = detail.template || {};
  if (template.name || template.summary) return template.name || template.summary.name;
  return item.template;
}

function requestCard(item, answer, ctx) {
  // GET /requests/{id} may nest the request ({request, csr, template, audit}) or not.
  const detail = {...item, ...(answer.request || {}), ...answer};
  const csr = detail.csr || {};
  const id = item.id || detail.id;
  const reason = h("input", {type: "text", name: "reason", id: `reason-${id}`, maxlength: "500",
    placeholder: "why (required to deny)", autocomplete: "off"});
  const forCa = detail.pending_reason === "ca";  // waiting for the CA, not for a manager
  const allowed = ctx.can("approver") && !forCa;
  const approve = h("button", {type: "button", class: "primary", disabled: !allowed,
    "data-action": "approve"}, "Approve");
  const deny = h("button", {type: "button", class: "danger", disabled: !allowed,
    "data-action": "deny"}, "Deny");
  const status = h("p", {class: "muted", role: "status"});

  async function decide(action) {
    const text = reason.value.trim();
    if (action === "deny" && !text) {
      status.textContent = "A reason is required to deny a request.";
      status.className = "error";
      reason.focus();
      return;
    }
    approve.disabled = deny.disabled = true;
    try {
      const answer = await post(`/requests/${encodeURIComponent(id)}/${action}`,
        text ? {reason: text} : {});
      const outcome = (answer && answer.outcome) || answer || {};
      const serial = outcome.serial || (answer.request && answer.request.certificate_serial);
      ctx.notify(`Request ${id} ${action === "approve" ? "approved" : "denied"}` +
        (serial ? `: certificate ${serial} issued.` : "."));
      ctx.refresh();
    } catch (exc) {
      status.textContent = `${action} failed: ${ctx.describe(exc)}`;
      status.className = "error";
      approve.disabled = deny.disabled = !allowed;
    }
  }
  approve.addEventListener("click", () => decide("approve"));
  deny.addEventListener("click", () => decide("deny"));

  const rules = rulesOf(detail);
  return h("article", {class: "card", "data-request-id": id},
    h("div", {class: "head"},
      h("h3", {}, csr.subject || item.subject || "(empty subject)"),
      h("span", {class: "muted mono"}, id)),
    facts([
      ["Subject", h("code", {}, csr.subject || item.subject || "(empty)")],
      ["SANs", (csr.sans || item.sans || []).join(", ")],
      ["Key", keyText(csr.key || item.key)],
      ["Requester", requesterText(detail.requester, detail.auth_method)],
      ["Protocol", detail.protocol || item.protocol],
      ["Template", templateName(detail, item)],
      ["Waiting for", detail.pending_reason || item.pending_reason],
      ["Received", when(detail.created_at || item.created_at)],
    ]),
    rules ? h("details", {class: "rules", open: window.matchMedia("(min-width: 900px)").matches},
      h("summary", {}, "Template rules"), plain(rules)) : null,
    Array.isArray(detail.audit) && detail.audit.length ? h("details", {},
      h("summary", {}, "History"), plain(detail.audit.map((e) => ({
        at: when(e.at), event: e.event, actor: e.actor})))) : null,
    h("div", {class: "decide"},
      h("div", {}, h("label", {for: reason.id}, "Reason"), reason), approve, deny),
    allowed ? null : h("p", {class: "muted"}, forCa
      ? "This request waits for the CA's answer, not for a manager."
      : `Your role (${ctx.role}) may view the queue; approving needs the approver role.`),
    status);
}

export async function renderQueue(ctx) {
  const pending = items(await get("/requests", {state: "pending", limit: 100}));
  if (!pending.length) return h("p", {class: "empty"}, "No request is waiting for approval.");
  const details = await Promise.all(pending.map((item) =>
    get(`/requests/${encodeURIComponent(item.id)}`).catch(() => ({}))));
  return h("div", {},
    h("p", {class: "muted"}, `${pending.length} pending request${pending.length === 1 ? "" : "s"}.`),
    h("div", {class: "cards"}, pending.map((item, i) => requestCard(item, details[i], ctx))));
}

// --- audit trail --------------------------------------------------------------------------

const AUDIT_FILTERS = [
  ["Event", "event"], ["Actor", "actor"], ["Request id", "request_id"], ["Serial", "serial"],
];

/** A detail value in a table cell: long opaque ones (hashes, transaction ids: no spaces)
 * shortened, in full in the tooltip; prose (a reason) as it is. */
function short(value) {
  const text = value !== null && typeof value === "object" ? JSON.stringify(value) : String(value);
  if (text.length <= 28 || /\s/.test(text)) return text;
  return h("span", {title: text}, `${text.slice(0, 12)}…${text.slice(-8)}`);
}

function auditRow(event) {
  const detail = Object.entries(event.detail || {}).filter(([, v]) => v !== null && v !== "")
    .map(([k, v]) => h("span", {class: "kv"}, h("span", {class: "muted"}, `${k} `), short(v)));
  return h("tr", {},
    h("td", {class: "mono nowrap"}, when(event.at || event.time || event.created_at).replace(" UTC", "")),
    h("td", {}, event.event || event.kind || ""),
    h("td", {}, event.actor || ""),
    h("td", {class: "mono nowrap"}, event.request_id ? short(event.request_id) : ""),
    h("td", {class: "mono nowrap"}, event.serial ? short(event.serial) : ""),
    h("td", {class: "detail"}, detail));
}

export async function renderAudit(ctx) {
  const form = h("form", {class: "filters", role: "search"});
  const controls = {};
  for (const [label, name] of AUDIT_FILTERS) {
    controls[name] = h("input", {type: "text", name, autocomplete: "off"});
    form.append(field(label, controls[name]));
  }
  controls.since = h("input", {type: "date", name: "since"});
  controls.until = h("input", {type: "date", name: "until"});
  form.append(field("Since", controls.since), field("Until", controls.until),
    h("button", {type: "submit", class: "primary"}, "Filter"));
  const body = h("tbody");
  const more = h("button", {type: "button", hidden: true}, "More");
  const out = h("div", {},
    form,
    h("div", {class: "table-wrap"}, h("table", {},
      h("thead", {}, h("tr", {}, ["Time (UTC)", "Event", "Actor", "Request", "Serial", "Detail"]
        .map((t) => h("th", {scope: "col"}, t)))),
      body)),
    h("div", {class: "pager"}, more));
  let cursor = null;

  async function load(reset) {
    const query = {limit: 100};
    for (const [name, control] of Object.entries(controls)) {
      if (!control.value) continue;
      query[name] = name === "since" || name === "until"
        ? `${control.value}T${name === "since" ? "00:00:00" : "23:59:59"}Z` : control.value.trim();
    }
    if (!reset && cursor) query.cursor = cursor;
    try {
      const data = await get("/audit", query);
      if (reset) body.replaceChildren();
      const events = items(data);
      body.append(...events.map(auditRow));
      if (reset && !events.length) {
        body.append(h("tr", {}, h("td", {colspan: "6", class: "empty"}, "No audit event matches.")));
      }
      cursor = data && data.next ? data.next : null;
      more.hidden = !cursor;
    } catch (exc) {
      ctx.notify(`Could not load the audit trail: ${ctx.describe(exc)}`, true);
    }
  }
  form.addEventListener("submit", (event) => { event.preventDefault(); load(true); });
  more.addEventListener("click", () => load(false));
  await load(true);
  return out;
}

// --- status -------------------------------------------------------------------------------

function healthBadge(value) {
  if (value === true || value === false) return badge(value ? "ok" : "failed");
  const text = typeof value === "string" ? value : value && (value.status || value.state || value.check);
  if (!text) return plain(value);
  return badge(/^(ok|ready|up|healthy)$/i.test(text) ? "ok" : text);
}

export async function renderStatus() {
  const status = await get("/status");
  const parts = [];
  const pending = status.pending ?? status.pending_queue ?? status.pending_requests;
  const waiting = pending && typeof pending === "object"
    ? `${pending.approval ?? 0} waiting for approval, ${pending.ca ?? 0} waiting for the CA`
    : pending;
  parts.push(facts([
    ["Version", status.version],
    ["Pending requests", waiting === undefined ? undefined : String(waiting)],
    ["Protocols", Array.isArray(status.protocols) ? status.protocols.join(", ") : undefined],
  ]));
  const connectors = status.connectors;
  if (connectors) {
    const rows = Array.isArray(connectors)
      ? connectors
      : Object.entries(connectors).map(([name, v]) => ({name, ...(typeof v === "object" ? v : {status: v})}));
    parts.push(h("h2", {}, "CA connectors"), h("div", {class: "table-wrap"}, h("table", {},
      h("thead", {}, h("tr", {}, ["Connector", "Health", "Detail"].map((t) => h("th", {scope: "col"}, t)))),
      h("tbody", {}, rows.map((r) => h("tr", {},
        h("td", {}, r.name || ""),
        h("td", {}, healthBadge(r.ok ?? r.status ?? r.check)),
        h("td", {}, r.detail || r.error || r.type || "")))))));
  }
  if (status.listeners !== undefined) parts.push(h("h2", {}, "Listeners"), plain(status.listeners));
  const shown = new Set(["version", "pending", "pending_queue", "pending_requests", "connectors",
    "protocols", "listeners"]);
  const rest = Object.fromEntries(Object.entries(status).filter(([k]) => !shown.has(k)));
  if (Object.keys(rest).length) parts.push(h("h2", {}, "More"), plain(rest));
  return h("div", {}, parts);
}
