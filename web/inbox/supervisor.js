// The supervisor's part of the inbox: their teams at a glance (waiting, oldest wait, who is
// online, open or closed), every agent's load and held conversations, SLA deadlines and
// breach alerts, from the `overview` and `sla_breach` frames the daemon pushes. A
// supervisor can open any conversation of their teams and assign or transfer it.
import { $, ago, contactName, el } from "./dom.js";
import { state } from "./state.js";

const TARGETS = {
  assignment: "assignment",
  first_response: "first response",
  next_response: "next response",
  resolution: "resolution",
};
const ALERTS_KEPT = 20;
const SOON_MS = 2 * 60 * 1000;

/** The daemon's time now, from the last overview (its clock may differ from this one). */
function daemonNow() {
  return Date.now() + (state.clockSkewMs || 0);
}

/** "in 3 min" or "4 min ago", for a deadline. */
function until(ms, now) {
  return ms >= now ? `in ${ago(now, ms)}` : `${ago(ms, now)} ago`;
}

/**
 * The SLA state worth showing for a conversation's timers: a breached one first, else the
 * running one due soonest. `{ text, level }` with level "breached", "soon" or "ok"; null
 * when no timer runs.
 */
export function slaSummary(timers, now = daemonNow()) {
  const list = timers || [];
  const breached = list.find((t) => t.breached_at_ms && !t.met_at_ms);
  if (breached) return { text: `${TARGETS[breached.target] || breached.target} overdue`, level: "breached" };
  const running = list
    .filter((t) => !t.met_at_ms && !t.breached_at_ms && t.due_at_ms)
    .sort((a, b) => a.due_at_ms - b.due_at_ms)[0];
  if (!running) return null;
  const left = running.due_at_ms - now;
  return {
    text: `${TARGETS[running.target] || running.target} due ${until(running.due_at_ms, now)}`,
    level: left <= SOON_MS ? "soon" : "ok",
  };
}

function slaBadge(timers) {
  const s = slaSummary(timers);
  return s ? el("span", { class: `sla sla-${s.level}` }, s.text) : "";
}

/** Takes an `overview` frame. */
export function takeOverview(o) {
  state.overview = o;
  state.clockSkewMs = o.now_ms - Date.now();
}

/** Takes an `sla_breach` frame: newest first, a bounded list. */
export function takeBreach(b) {
  state.breaches.unshift({ ...b, seen_at: Date.now() });
  state.breaches.length = Math.min(state.breaches.length, ALERTS_KEPT);
}

function teamLine(t) {
  const parts = [`${t.queued} waiting`];
  if (t.queued) parts.push(`oldest ${ago(0, t.oldest_wait_ms)}`);
  parts.push(`${t.agents_online} online`);
  parts.push(t.open ? "open" : `closed${t.next_open ? `, back ${t.next_open}` : ""}`);
  return el(
    "li",
    { class: `ov-team${t.sla_breached ? " ov-alert" : ""}`, "data-team": t.name },
    el("span", { class: "who" }, t.name),
    el("span", { class: "detail" }, parts.join(" · ")),
    t.sla_breached ? el("span", { class: "sla sla-breached" }, `${t.sla_breached} SLA breached`) : "",
  );
}

function agentLine(a, onPick) {
  const held = a.conversations.map((c) => {
    const b = el("button", { type: "button", class: "ov-conv", "data-id": c.conversation_id }, contactName(c.contact), slaBadge(c.sla));
    b.addEventListener("click", () => onPick(c.conversation_id));
    return b;
  });
  const load = Number.isInteger(a.load) ? String(a.load) : a.load.toFixed(1);
  return el(
    "li",
    { class: "ov-agent", "data-agent": a.id },
    el("span", { class: `dot dot-${a.connected ? a.presence : "offline"}`, role: "img", "aria-label": a.connected ? a.presence : "offline" }),
    el("span", { class: "who" }, a.name),
    el("span", { class: "detail" }, `${load} of ${a.capacity}`),
    held.length ? el("span", { class: "ov-held" }, ...held) : "",
  );
}

function alertLine(b) {
  const who = b.agent_id ? ` (held by ${b.agent_id})` : "";
  return el(
    "li",
    { class: "ov-breach" },
    el("span", { class: "sla sla-breached" }, `${TARGETS[b.target] || b.target} missed`),
    el("span", { class: "detail" }, `${b.team} · ${b.conversation_id.slice(-4)}${who} · ${ago(b.seen_at)} ago`),
  );
}

/** Shows or hides the overview section and redraws it. */
export function renderOverview(onPick) {
  const section = $("overview");
  const sup = Boolean(state.agent && state.agent.supervisor);
  section.hidden = !sup || !state.overview;
  if (section.hidden) return;
  const o = state.overview;
  $("ov-teams").replaceChildren(...o.teams.map(teamLine));
  $("ov-agents").replaceChildren(...o.agents.map((a) => agentLine(a, onPick)));
  $("ov-alerts").replaceChildren(...state.breaches.map(alertLine));
  $("ov-alerts-count").textContent = String(state.breaches.length);
  // Agents a waiting conversation can be given to.
  const select = $("assign-to");
  const chosen = select.value;
  select.replaceChildren(
    ...o.agents.map((a) => el("option", { value: a.id }, `${a.name} (${Number.isInteger(a.load) ? a.load : a.load.toFixed(1)}/${a.capacity}${a.connected ? "" : ", offline"})`)),
  );
  if (chosen) select.value = chosen;
}

/** The SLA timers the daemon last reported for a conversation, wherever it is. */
export function timersOf(id) {
  const o = state.overview;
  if (!o) return (state.queue.find((q) => q.conversation_id === id) || {}).sla || [];
  const q = o.queue.find((e) => e.conversation_id === id);
  if (q) return q.sla || [];
  for (const a of o.agents) {
    const c = a.conversations.find((x) => x.conversation_id === id);
    if (c) return c.sla || [];
  }
  return [];
}

/**
 * The supervisor's controls under a conversation they do not hold: assign (while it
 * waits) and transfer (waiting or held by someone else).
 */
export function renderSuperviseActions(cur) {
  const box = $("supervise-actions");
  const sup = Boolean(state.agent && state.agent.supervisor);
  const show = sup && cur && cur.kind === "queued";
  box.hidden = !show;
  if (!show) return;
  const waiting = !(cur.conv.owner && cur.conv.owner.state === "agent");
  $("assign-row").hidden = !waiting;
  const s = slaSummary(timersOf(cur.conv.id));
  $("supervise-sla").textContent = s ? `SLA: ${s.text}` : "";
  $("supervise-holder").textContent = waiting ? "" : `Held by ${cur.conv.owner.agent_id}`;
}

/** Wires the supervisor's buttons; `send(frame)` sends on the agent websocket. */
export function wireSupervisor(send, selected) {
  $("assign").addEventListener("click", () => {
    const id = selected();
    const agent = $("assign-to").value;
    if (id && agent) send({ type: "assign", conversation_id: id, agent_id: agent });
  });
  $("move").addEventListener("click", () => {
    const id = selected();
    const to = $("move-to").value.trim();
    if (!id || !to) return;
    const frame = { type: "transfer", conversation_id: id };
    frame[$("move-kind").value === "agent" ? "to_agent" : "to_team"] = to;
    send(frame);
    $("move-to").value = "";
  });
}
