// The left column: offers, the agent's conversations, and the queue of their teams, each
// line with the channel icon, the customer's name and how long they have waited.
import { $, ago, channelIcon, contactName, el } from "./dom.js";
import { entriesOf, state } from "./state.js";
import { slaSummary } from "./supervisor.js";

const cache = new Map(); // list id -> Map(conversation id -> <li>)

/**
 * One line of a list. An existing line's button is kept and only its content changes, so
 * keyboard focus stays put while waiting times tick.
 */
function line(listId, { id, channel, name, detail, badge, cls }, onPick) {
  const lines = cache.get(listId) || new Map();
  cache.set(listId, lines);
  let li = lines.get(id);
  if (!li) {
    const button = el("button", { type: "button", "data-id": id });
    button.addEventListener("click", () => onPick(id));
    li = el("li", {}, button);
    lines.set(id, li);
  }
  const button = li.firstElementChild;
  button.className = `item ${cls || ""}`.trim();
  if (state.selected === id) button.setAttribute("aria-current", "true");
  else button.removeAttribute("aria-current");
  button.replaceChildren(
    channelIcon(channel),
    el("span", { class: "who" }, name),
    badge ? el("span", { class: "badge" }, badge) : "",
    el("span", { class: "detail" }, detail),
  );
  return li;
}

/** Puts `items` into the list element, moving only what moved; forgets lines no longer there. */
function fill(listId, items) {
  const list = $(listId);
  items.forEach((li, i) => {
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
  });
  while (list.children.length > items.length) list.lastElementChild.remove();
  const lines = cache.get(listId);
  if (lines) for (const [id, li] of lines) if (!items.includes(li)) lines.delete(id);
  $(`${listId}-count`).textContent = String(items.length);
}

function waitingSince(pkg) {
  return pkg && pkg.escalated_at_ms ? `waiting ${ago(pkg.escalated_at_ms)}` : "";
}

/** Redraws the three lists; onPick(id) opens a conversation. */
export function renderLists(onPick) {
  const offers = [...state.offers.entries()].map(([id, o]) =>
    line(
      "offers",
      {
        id,
        channel: o.package.channel,
        name: contactName(o.package.contact),
        detail: `${waitingSince(o.package)} · ${Math.max(0, Math.round((o.expiresAt - Date.now()) / 1000))} s to accept`,
        badge: priorityLabel(o.package.priority),
        cls: "offer",
      },
      onPick,
    ),
  );
  fill("offers", offers);

  const mine = [...state.mine.values()].map((c) => {
    const last = entriesOf(c).filter((e) => e.role === "customer").pop();
    const pkg = c.package || {};
    return line(
      "mine",
      {
        id: c.id,
        channel: pkg.channel,
        name: contactName(pkg.contact),
        detail: last ? `customer ${ago(last.at_ms)} ago` : "",
        badge: c.unread ? `${c.unread} new` : "",
        cls: state.typing.has(c.id) ? "typing" : "",
      },
      onPick,
    );
  });
  fill("mine", mine);

  const queue = state.queue.map((q) => {
    const sla = slaSummary(q.sla);
    return line(
      "queue",
      {
        id: q.conversation_id,
        channel: q.channel,
        name: contactName(q.contact),
        detail: `#${q.position} ${q.team} · waiting ${ago(q.enqueued_at_ms)}${sla ? ` · ${sla.text}` : ""}`,
        badge: state.agent && q.offered_to === state.agent.id ? "offered to you" : priorityLabel(q.priority),
        cls: sla && sla.level !== "ok" ? `sla-${sla.level}` : "",
      },
      onPick,
    );
  });
  fill("queue", queue);
}

/** Priority 0..3 as a word; only high ones are worth a badge. */
export function priorityLabel(p) {
  return p >= 3 ? "urgent" : p === 2 ? "high" : "";
}
