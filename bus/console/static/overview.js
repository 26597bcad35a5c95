// The overview's live parts: flow charts per unit (SVG), queues, connectors and dead-letter
// counts, refreshed every few seconds from the console's JSON API. No library: none can be
// fetched where the console runs.
"use strict";

const MEASURES = ["received", "synced", "rejected", "dead_lettered"];
const COLORS = { received: "#6c7a89", synced: "#2a8c4a", rejected: "#d08400", dead_lettered: "#c0392b" };
const SVG = "http://www.w3.org/2000/svg";

function element(tag, attributes, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function seconds(value) {
  if (value === null || value === undefined) return "—";
  return value < 1 ? `${Math.round(value * 1000)} ms` : `${value.toFixed(2)} s`;
}

function when(epoch) {
  return epoch ? new Date(epoch * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "—";
}

function chart(times, series) {
  const width = 360, height = 140, pad = 4;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const top = Math.max(1, ...MEASURES.flatMap((m) => series[m]));
  const x = (i) => (times.length < 2 ? 0 : (i / (times.length - 1)) * width);
  const y = (v) => height - pad - (v / top) * (height - 2 * pad);
  for (const measure of MEASURES) {
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", series[measure].map((v, i) => `${x(i)},${y(v)}`).join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", COLORS[measure]);
    line.setAttribute("stroke-width", "2");
    line.setAttribute("vector-effect", "non-scaling-stroke");
    line.dataset.measure = measure;
    svg.appendChild(line);
  }
  const label = document.createElementNS(SVG, "text");
  label.setAttribute("x", 4); label.setAttribute("y", 14); label.setAttribute("font-size", 11);
  label.textContent = `max ${top.toFixed(1)}/s`;
  svg.appendChild(label);
  return svg;
}

function drawFlow(flow) {
  const box = document.getElementById("flow");
  const units = Object.keys(flow.units);
  if (!units.length) return;
  box.replaceChildren();
  for (const unit of units) {
    const data = flow.units[unit];
    const card = element("section", { class: "unit", id: `unit-${unit}`, "data-unit": unit });
    card.appendChild(element("h3", {}, unit));
    card.appendChild(chart(flow.times, data));
    const last = (m) => (data[m].length ? data[m][data[m].length - 1] : 0);
    const now = MEASURES.map((m) => `${m.replace("_", "-")} ${last(m).toFixed(1)}/s`).join(" · ");
    card.appendChild(element("p", { class: "rates" }, now));
    const quantile = (name) => (data.lag.beyond.includes(name) ? "> " : "") + seconds(data.lag[name]);
    const lag = `lag p50 ${quantile("p50")} · p99 ${quantile("p99")}`;
    card.appendChild(element("p", { class: "lag", title: data.lag.window || "" }, lag));
    box.appendChild(card);
  }
  const failing = flow.sources.filter((s) => !s.ok);
  document.getElementById("sources").textContent = failing.length
    ? `Not answering: ${failing.map((s) => `${s.url} (${s.error || "no scrape yet"})`).join(", ")}`
    : `Scraping ${flow.sources.length} service(s) every ${flow.interval} s.`;
}

function fill(id, rows) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren(...rows.map((cells) => {
    const row = element("tr");
    for (const cell of cells) {
      const td = element("td", {}, String(cell.text ?? cell));
      if (cell.class) td.className = cell.class;
      row.appendChild(td);
    }
    return row;
  }));
}

function drawStatus(status) {
  fill("queues", status.queues.map((q) => [q.name, q.ready, q.unacked, q.consumers]));
  fill("connectors", status.connectors.map((c) => [
    c.connector, c.unit, when(c.last_heartbeat), c.outbox ?? "—", c.rejects ?? "—",
    { text: c.healthy ? "healthy" : "silent", class: c.healthy ? "" : "unhealthy" },
  ]));
  fill("dead-counts", status.dead_letters.map((d) => [d.unit, d.reason, d.count]));
}

async function refresh() {
  try {
    const [flow, status] = await Promise.all([
      fetch("/api/flow").then((r) => r.json()),
      fetch("/api/status").then((r) => r.json()),
    ]);
    drawFlow(flow);
    drawStatus(status);
  } catch (error) {
    document.getElementById("sources").textContent = `The console does not answer: ${error}`;
  }
}

refresh();
setInterval(refresh, 2000);
