// The right column: the handoff package (docs/handoff-package.schema.json) of the open
// conversation: why it was escalated, intent, sentiment over time, entities, summary.
import { el } from "./dom.js";
import { priorityLabel } from "./lists.js";

const SVG = "http://www.w3.org/2000/svg";

/** An inline SVG line of customer sentiment (-1..1), oldest left. */
export function sparkline(values, width = 160, height = 36) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", String(width));
  svg.setAttribute("height", String(height));
  svg.setAttribute("class", "sparkline");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `Sentiment of ${values.length} customer messages: ${values.map((v) => v.toFixed(2)).join(", ")}`);
  const zero = document.createElementNS(SVG, "line");
  zero.setAttribute("x1", "0");
  zero.setAttribute("x2", String(width));
  zero.setAttribute("y1", String(height / 2));
  zero.setAttribute("y2", String(height / 2));
  zero.setAttribute("class", "zero");
  svg.append(zero);
  if (values.length === 0) return svg;
  const step = values.length > 1 ? (width - 6) / (values.length - 1) : 0;
  const points = values.map((v, i) => {
    const y = height / 2 - Math.max(-1, Math.min(1, v)) * (height / 2 - 3);
    return [3 + i * step, y];
  });
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" "));
  line.setAttribute("class", "trend");
  svg.append(line);
  for (const [x, y] of points) {
    const dot = document.createElementNS(SVG, "circle");
    dot.setAttribute("cx", x.toFixed(1));
    dot.setAttribute("cy", y.toFixed(1));
    dot.setAttribute("r", "2.5");
    svg.append(dot);
  }
  return svg;
}

function section(title, ...content) {
  return el("section", { class: "pkg-section" }, el("h3", {}, title), ...content);
}

/** Fills the package column, or hides it when there is no package. */
export function renderPackage(container, pkg, entries) {
  if (!pkg) {
    container.hidden = true;
    container.replaceChildren();
    return;
  }
  container.hidden = false;
  const triggers = el(
    "ul",
    { class: "triggers" },
    ...(pkg.triggers || []).map((t) =>
      el(
        "li",
        { class: "trigger" },
        el("strong", {}, t.trigger.replaceAll("_", " ")),
        el("span", { class: "evidence" }, t.evidence || ""),
        el("span", { class: "meta" }, `message ${t.message_seq}${t.score !== undefined && t.score !== null ? ` · score ${Number(t.score).toFixed(2)}` : ""}`),
      ),
    ),
  );
  const sentiments = entries.filter((e) => e.role === "customer" && typeof e.sentiment === "number").map((e) => e.sentiment);
  const s = pkg.sentiment || {};
  const fmt = (v) => (typeof v === "number" ? v.toFixed(2) : "–");
  const entities = (pkg.entities || []).length
    ? el("ul", { class: "entities" }, ...pkg.entities.map((e) => el("li", {}, el("span", { class: "kind" }, e.kind.replaceAll("_", " ")), " ", el("code", {}, e.value))))
    : el("p", { class: "meta" }, "none found");
  const contact = pkg.contact || {};
  const facts = el(
    "dl",
    { class: "facts" },
    el("dt", {}, "Intent"),
    el("dd", { class: "intent" }, pkg.intent || "unknown"),
    el("dt", {}, "Language"),
    el("dd", { class: "language" }, contact.language || "not given"),
    el("dt", {}, "Team"),
    el("dd", {}, pkg.team || ""),
    el("dt", {}, "Priority"),
    el("dd", {}, `${pkg.priority} ${priorityLabel(pkg.priority)}`.trim()),
    el("dt", {}, "Handoff"),
    el("dd", {}, `#${pkg.handoff_number || 1}${pkg.previous_agent ? ` · last agent ${pkg.previous_agent}` : ""}`),
  );
  container.replaceChildren(
    el("h2", {}, "Handoff package"),
    section("Why it was escalated", triggers),
    section("Summary", el("pre", { class: "summary" }, pkg.summary || "")),
    section(
      "Sentiment",
      sparkline(sentiments),
      el("p", { class: "meta" }, `now ${fmt(s.current)} · lowest ${fmt(s.lowest)} · trend ${fmt(s.trend)}`),
    ),
    section("Entities", entities),
    section("Details", facts),
  );
}
