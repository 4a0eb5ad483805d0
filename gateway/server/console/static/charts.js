// Certificates due for renewal over the coming weeks (the week each one's renewal window
// opens): a bar chart drawn as SVG with DOM calls from GET /api/v1/certificates/expiring,
// with the same figures, and the expiries, as a table.

import {get, items} from "./api.js";
import {field, h, s, select} from "./dom.js";

const WIDTH = 860;
const HEIGHT = 300;
const PAD = {top: 24, right: 16, bottom: 48, left: 44};

/** The axis top: four whole-number steps at or above the highest bar. */
function niceMax(value) {
  const rough = Math.max(1, Math.ceil(value / 4));
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 3, 4, 5, 6, 8, 10].map((m) => m * magnitude).find((s) => s >= rough);
  return step * 4;
}

function weekLabel(start) {
  return String(start || "").slice(5, 10);  // MM-DD of YYYY-MM-DD
}

export function chart(weeks) {
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const top = niceMax(Math.max(0, ...weeks.map((w) => w.due || 0)));
  const slot = plotW / Math.max(weeks.length, 1);
  const bar = Math.max(4, slot * 0.7);
  const y = (count) => PAD.top + plotH - (count / top) * plotH;
  const svg = s("svg", {class: "chart", viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img",
    "aria-labelledby": "chart-title"},
  s("title", {id: "chart-title"}, "Certificates due for renewal per week"));
  for (let i = 0; i <= 4; i += 1) {
    const value = (top / 4) * i;
    const yy = y(value);
    svg.append(
      s("line", {class: "grid", x1: PAD.left, x2: WIDTH - PAD.right, y1: yy, y2: yy}),
      s("text", {class: "tick", x: PAD.left - 6, y: yy + 4, "text-anchor": "end"},
        value));
  }
  weeks.forEach((week, i) => {
    const x = PAD.left + i * slot + (slot - bar) / 2;
    const yy = y(week.due || 0);
    svg.append(
      s("rect", {class: "bar", x, y: yy, width: bar, height: PAD.top + plotH - yy},
        s("title", {}, `week of ${week.week_start}: ${week.due || 0} due, ${week.count} expiring`)),
      s("text", {class: "value", x: x + bar / 2, y: yy - 5, "text-anchor": "middle"}, week.due || 0),
      s("text", {class: "tick", x: x + bar / 2, y: PAD.top + plotH + 16, "text-anchor": "middle"},
        weekLabel(week.week_start)));
  });
  svg.append(
    s("line", {class: "axis", x1: PAD.left, x2: WIDTH - PAD.right, y1: PAD.top + plotH, y2: PAD.top + plotH}),
    s("line", {class: "axis", x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: PAD.top + plotH}),
    s("text", {class: "tick", x: PAD.left + plotW / 2, y: HEIGHT - 8, "text-anchor": "middle"},
      "week starting (UTC)"));
  return svg;
}

export async function renderRenewals() {
  const weeksControl = select("weeks", [["4", "4 weeks"], ["8", "8 weeks"], ["12", "12 weeks"],
    ["26", "26 weeks"]], "8");
  const area = h("div");

  async function draw() {
    const data = await get("/certificates/expiring", {weeks: weeksControl.value});
    const weeks = items(data).length ? items(data) : (data && data.weeks) || [];
    const due = weeks.reduce((n, w) => n + (w.due || 0), 0);
    const expiring = weeks.reduce((n, w) => n + (w.count || 0), 0);
    area.replaceChildren(
      h("p", {class: "muted"}, `${due} valid certificate${due === 1 ? " falls" : "s fall"} due for renewal in the next ${weeks.length} weeks (renewal window open or opening); ${expiring} expire.`),
      chart(weeks),
      h("details", {}, h("summary", {}, "Figures"),
        h("div", {class: "table-wrap"}, h("table", {},
          h("thead", {}, h("tr", {}, h("th", {scope: "col"}, "Week starting"), h("th", {scope: "col"}, "Due for renewal"), h("th", {scope: "col"}, "Expiring"))),
          h("tbody", {}, weeks.map((w) => h("tr", {},
            h("td", {class: "mono"}, w.week_start), h("td", {class: "num"}, String(w.due || 0)),
            h("td", {class: "num"}, String(w.count)))))))));
  }
  weeksControl.addEventListener("change", () => draw());
  await draw();
  return h("div", {}, h("form", {class: "filters compact"}, field("Horizon", weeksControl)), area);
}
