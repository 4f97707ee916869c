// The left column: offers, the agent's conversations, and the queue of their teams, each
// line with the channel icon, the customer's name and how long they have waited.
import { $, ago, channelIcon, contactName, el } from "./dom.js";
import { entriesOf, state } from "./state.js";

function line({ id, channel, name, detail, badge, cls }, onPick) {
  const button = el(
    "button",
    { type: "button", class: `item ${cls || ""}`, "data-id": id, "aria-current": state.selected === id ? "true" : false },
    channelIcon(channel),
    el("span", { class: "who" }, name),
    badge ? el("span", { class: "badge" }, badge) : null,
    el("span", { class: "detail" }, detail),
  );
  button.addEventListener("click", () => onPick(id));
  return el("li", {}, button);
}

function waitingSince(pkg) {
  return pkg && pkg.escalated_at_ms ? `waiting ${ago(pkg.escalated_at_ms)}` : "";
}

/** Redraws the three lists; onPick(id) opens a conversation. */
export function renderLists(onPick) {
  const offers = [...state.offers.entries()].map(([id, o]) =>
    line(
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
  $("offers").replaceChildren(...offers);
  $("offers-count").textContent = String(offers.length);

  const mine = [...state.mine.values()].map((c) => {
    const last = entriesOf(c).filter((e) => e.role === "customer").pop();
    const pkg = c.package || {};
    return line(
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
  $("mine").replaceChildren(...mine);
  $("mine-count").textContent = String(mine.length);

  const queue = state.queue.map((q) =>
    line(
      {
        id: q.conversation_id,
        channel: q.channel,
        name: contactName(q.contact),
        detail: `#${q.position} ${q.team} · waiting ${ago(q.enqueued_at_ms)}`,
        badge: q.offered_to_you ? "offered to you" : priorityLabel(q.priority),
      },
      onPick,
    ),
  );
  $("queue").replaceChildren(...queue);
  $("queue-count").textContent = String(queue.length);
}

/** Priority 0..3 as a word; only high ones are worth a badge. */
export function priorityLabel(p) {
  return p >= 3 ? "urgent" : p === 2 ? "high" : "";
}
