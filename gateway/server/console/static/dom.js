// DOM helpers: every piece of data reaches the page as a text node or an attribute value,
// never as markup (a CSR subject is whatever the requester wrote).

const SVG_NS = "http://www.w3.org/2000/svg";

function build(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "text") {
      node.textContent = String(value);
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An HTML element: h("td", {class: "num"}, "3"). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, attributes set one by one. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

/** A date-time as "YYYY-MM-DD HH:MM UTC" (or the text given when it is not one). */
export function when(value) {
  if (!value) return "";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

export function badge(text) {
  const word = String(text ?? "");
  return h("span", {class: `badge ${word.toLowerCase().replace(/[^a-z]/g, "")}`}, word);
}

/** Facts as a definition list; empty values are left out. */
export function facts(pairs) {
  const dl = h("dl", {class: "facts"});
  for (const [name, value] of pairs) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value) && value.length === 0) continue;
    dl.append(h("dt", {}, name), h("dd", {}, value instanceof Node ? value : plain(value)));
  }
  return dl;
}

/** Any JSON value as readable DOM: objects as definition lists, lists of objects as tables. */
export function plain(value) {
  if (value === null || value === undefined) return h("span", {class: "muted"}, "–");
  if (Array.isArray(value)) {
    if (value.length && value.every((v) => v && typeof v === "object" && !Array.isArray(v))) {
      return table(value);
    }
    return h("span", {}, value.map((v) => (typeof v === "object" ? JSON.stringify(v) : String(v))).join(", "));
  }
  if (typeof value === "object") {
    return facts(Object.entries(value).map(([k, v]) => [k.replace(/_/g, " "), v]));
  }
  return h("span", {}, String(value));
}

function table(rows) {
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  return h("div", {class: "table-wrap"},
    h("table", {},
      h("thead", {}, h("tr", {}, keys.map((k) => h("th", {scope: "col"}, k.replace(/_/g, " "))))),
      h("tbody", {}, rows.map((r) => h("tr", {}, keys.map((k) => h("td", {}, cell(r[k]))))))));
}

function cell(value) {
  if (value === true) return "yes";
  if (value === false) return "no";
  if (value && typeof value === "object") return plain(value);
  return value === null || value === undefined ? "" : String(value);
}

/** A labelled form field inside a <div>, for the filter bars. */
export function field(label, control, wide = false) {
  if (!control.id) control.id = `f-${label.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return h("div", {class: wide ? "wide" : undefined}, h("label", {for: control.id}, label), control);
}

export function select(name, options, value = "") {
  return h("select", {name}, options.map(([v, text]) =>
    h("option", {value: v, selected: v === value}, text)));
}
