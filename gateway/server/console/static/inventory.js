// The certificate inventory: search, filters, revocation with a reason.

import {get, items, post} from "./api.js";
import {badge, field, h, select, when} from "./dom.js";

// RFC 5280 §5.3.1 reasons an operator gives (certificateHold and removeFromCRL are not
// offered: a revocation here is final).
const REASONS = [
  ["unspecified", "unspecified"], ["keyCompromise", "key compromise"],
  ["affiliationChanged", "affiliation changed"], ["superseded", "superseded"],
  ["cessationOfOperation", "cessation of operation"],
  ["privilegeWithdrawn", "privilege withdrawn"],
];

function revokeForm(cert, ctx, done) {
  const reason = select("reason", REASONS, "unspecified");
  reason.id = `revoke-reason-${cert.serial}`;
  const confirm = h("button", {type: "submit", class: "danger"}, "Revoke");
  const cancel = h("button", {type: "button"}, "Cancel");
  const form = h("form", {class: "inline-form", "aria-label": `Revoke ${cert.serial}`},
    h("label", {for: reason.id}, "Reason"), reason, confirm, cancel);
  cancel.addEventListener("click", () => done(false));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    confirm.disabled = true;
    try {
      await post(`/certificates/${encodeURIComponent(cert.serial)}/revoke`, {reason: reason.value});
      ctx.notify(`Certificate ${cert.serial} revoked (${reason.value}).`);
      done(true);
    } catch (exc) {
      ctx.notify(`Revocation failed: ${ctx.describe(exc)}`, true);
      confirm.disabled = false;
    }
  });
  queueMicrotask(() => reason.focus());
  return form;
}

function certRow(cert, ctx, reload) {
  const status = cert.status || "";
  const expired = status === "valid" && cert.not_after && new Date(cert.not_after) < new Date();
  const actions = h("td", {});
  if (ctx.can("approver") && status === "valid") {
    const button = h("button", {type: "button", "data-action": "revoke"}, "Revoke…");
    button.addEventListener("click", () => {
      actions.replaceChildren(revokeForm(cert, ctx, (changed) => {
        if (changed) reload();
        else actions.replaceChildren(button);
      }));
    });
    actions.append(button);
  }
  return h("tr", {"data-serial": cert.serial},
    h("td", {class: "mono"}, cert.serial),
    h("td", {}, h("code", {}, cert.subject || "")),
    h("td", {}, (cert.sans || []).join(", ")),
    h("td", {}, cert.template || ""),
    h("td", {}, badge(expired ? "expired" : status),
      cert.revocation_reason ? h("span", {class: "muted"}, ` ${cert.revocation_reason}`) : null),
    h("td", {class: "mono"}, when(cert.not_after)),
    actions);
}

export async function renderInventory(ctx) {
  const controls = {
    q: h("input", {type: "search", name: "q", placeholder: "subject, SAN or serial", autocomplete: "off"}),
    subject: h("input", {type: "text", name: "subject", autocomplete: "off"}),
    san: h("input", {type: "text", name: "san", autocomplete: "off"}),
    serial: h("input", {type: "text", name: "serial", autocomplete: "off"}),
    template: select("template", [["", "any"]]),
    status: select("status", [["", "any"], ["valid", "valid"], ["revoked", "revoked"], ["expired", "expired"]]),
    expires_after: h("input", {type: "date", name: "expires_after"}),
    expires_before: h("input", {type: "date", name: "expires_before"}),
  };
  try {
    for (const t of items(await get("/templates"))) {
      const name = typeof t === "string" ? t : t.name || (t.summary && t.summary.name);
      controls.template.append(h("option", {value: name}, name));
    }
  } catch (exc) {
    // the filter still works as free text through the search box
  }
  const form = h("form", {class: "filters", role: "search"},
    field("Search", controls.q, true), field("Subject", controls.subject), field("SAN", controls.san),
    field("Serial", controls.serial), field("Template", controls.template),
    field("Status", controls.status), field("Expires after", controls.expires_after),
    field("Expires before", controls.expires_before),
    h("button", {type: "submit", class: "primary"}, "Search"));
  const body = h("tbody");
  const more = h("button", {type: "button", hidden: true}, "More");
  let cursor = null;

  async function load(reset) {
    const query = {limit: 100};
    for (const [name, control] of Object.entries(controls)) {
      if (!control.value) continue;
      query[name] = name.startsWith("expires_") ? `${control.value}T00:00:00Z` : control.value.trim();
    }
    if (!reset && cursor) query.cursor = cursor;
    try {
      const data = await get("/certificates", query);
      const certs = items(data);
      if (reset) body.replaceChildren();
      body.append(...certs.map((c) => certRow(c, ctx, () => load(true))));
      if (reset && !certs.length) {
        body.append(h("tr", {}, h("td", {colspan: "7", class: "empty"}, "No certificate matches.")));
      }
      cursor = data && data.next ? data.next : null;
      more.hidden = !cursor;
    } catch (exc) {
      ctx.notify(`Could not search: ${ctx.describe(exc)}`, true);
    }
  }
  form.addEventListener("submit", (event) => { event.preventDefault(); load(true); });
  more.addEventListener("click", () => load(false));
  await load(true);
  return h("div", {}, form,
    h("div", {class: "table-wrap"}, h("table", {},
      h("thead", {}, h("tr", {}, ["Serial", "Subject", "SANs", "Template", "Status", "Expires", ""]
        .map((t) => h("th", {scope: "col"}, t)))),
      body)),
    h("div", {class: "pager"}, more));
}
