// The inbox's state: who the agent is, open offers, the queue, the conversations they hold,
// and which one is open. Modules change it through these functions and then call render().

/** Everything the page shows. */
export const state = {
  agent: null,
  presence: "online",
  link: "connecting",
  offers: new Map(), // conversation_id -> { package, expiresAt }
  queue: [], // queue entries of the agent's teams (get_queue)
  mine: new Map(), // conversation_id -> conversation (see emptyConversation)
  viewing: new Map(), // conversation_id -> conversation loaded read-only (queued)
  selected: null,
  typing: new Set(), // conversation ids whose customer is typing
  windows: new Map(), // conversation_id -> messaging window (WhatsApp, Messenger, Instagram)
  pendingReplies: new Map(), // client_id -> { conversation_id, text }
  overview: null, // supervisors: the last `overview` frame
  clockSkewMs: 0, // supervisors: the daemon's clock minus this one's
  breaches: [], // supervisors: recent `sla_breach` frames, newest first
};

/** A conversation as the inbox keeps it: entries by seq, so nothing is shown twice. */
export function emptyConversation(id) {
  return { id, package: null, owner: null, entries: new Map(), unread: 0 };
}

/** Stores transcript entries, ignoring seqs already known. Returns how many were new. */
export function addEntries(conv, entries) {
  let added = 0;
  for (const e of entries || []) {
    if (!conv.entries.has(e.seq)) {
      conv.entries.set(e.seq, e);
      added += 1;
    }
  }
  return added;
}

/** The transcript in order. */
export function entriesOf(conv) {
  return [...conv.entries.values()].sort((a, b) => a.seq - b.seq);
}

/** The conversation shown in the middle, with where it comes from. */
export function current() {
  const id = state.selected;
  if (!id) return null;
  if (state.mine.has(id)) return { kind: "mine", conv: state.mine.get(id) };
  if (state.offers.has(id)) {
    const offer = state.offers.get(id);
    const conv = emptyConversation(id);
    conv.package = offer.package;
    addEntries(conv, offer.package.transcript);
    return { kind: "offer", conv, offer };
  }
  if (state.viewing.has(id)) return { kind: "queued", conv: state.viewing.get(id) };
  return null;
}
