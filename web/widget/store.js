// What the widget remembers across page loads, in localStorage of the host page's origin:
// the visitor token (the visitor's identity), the highest message seq received, the
// transcript, and messages sent but not yet acknowledged (resent with the same client_id).

const MAX_KEPT = 300;

/** Persistent state of one visitor talking to one daemon. */
export class VisitorStore {
  constructor(server) {
    this.prefix = "handoffd:" + server + ":";
    this.token = this.read("token", null);
    this.lastSeq = Number(this.read("last_seq", 0)) || 0;
    this.log = this.read("log", []);
    this.pending = this.read("pending", []);
  }

  read(key, fallback) {
    try {
      const raw = localStorage.getItem(this.prefix + key);
      return raw === null ? fallback : JSON.parse(raw);
    } catch {
      return fallback;
    }
  }

  write(key, value) {
    try {
      localStorage.setItem(this.prefix + key, JSON.stringify(value));
    } catch {
      // Storage full or blocked: the conversation still works, it just won't survive a reload.
    }
  }

  save() {
    this.write("token", this.token);
    this.write("last_seq", this.lastSeq);
    this.write("log", this.log.slice(-MAX_KEPT));
    this.write("pending", this.pending);
  }

  setToken(token) {
    this.token = token;
    this.save();
  }

  /** The token was refused: start over as a new visitor. */
  forget() {
    this.token = null;
    this.lastSeq = 0;
    this.log = [];
    this.pending = [];
    this.save();
  }

  /** Adds a message with a seq; false when it is already known (a replay overlap). */
  remember(message) {
    if (this.log.some((m) => m.seq === message.seq)) return false;
    this.log.push(message);
    this.log.sort((a, b) => a.seq - b.seq);
    if (message.client_id) this.dropPending(message.client_id);
    this.save();
    return true;
  }

  /** Only message frames move last_seq (acks may overtake bot replies). */
  advance(seq) {
    if (seq > this.lastSeq) {
      this.lastSeq = seq;
      this.save();
    }
  }

  addPending(clientId, text) {
    this.pending.push({ client_id: clientId, text, at_ms: Date.now() });
    this.save();
  }

  dropPending(clientId) {
    const before = this.pending.length;
    this.pending = this.pending.filter((p) => p.client_id !== clientId);
    if (this.pending.length !== before) this.save();
  }

  textOfPending(clientId) {
    const p = this.pending.find((x) => x.client_id === clientId);
    return p ? p.text : undefined;
  }
}
