// The widget: wires the stored state, the websocket client and the view together.
import { VisitorStore } from "./store.js";
import { WidgetClient } from "./client.js";
import { buildView } from "./view.js";

const TYPING_IDLE_MS = 3000;

/** Mounts the widget into the page with the options the loader read. */
export function mount(options) {
  const store = new VisitorStore(options.server);
  let typingOn = false;
  let typingTimer = null;

  const client = new WidgetClient({
    server: options.server,
    store,
    name: options.name,
    language: options.language,
    on: {
      message: () => {},
      changed: () => redraw(),
      status: (s) => view.status(s),
      typing: (active) => view.typing(active),
      connection: (state) => view.connection(state),
    },
  });

  function setTyping(active) {
    clearTimeout(typingTimer);
    if (active) typingTimer = setTimeout(() => setTyping(false), TYPING_IDLE_MS);
    if (active === typingOn) return;
    typingOn = active;
    client.typing(active);
  }

  const view = buildView(options, {
    send: (text) => client.say(text),
    typing: setTyping,
  });

  function redraw() {
    const known = new Set(store.log.map((m) => m.client_id).filter(Boolean));
    view.render(store.log, store.pending.filter((p) => !known.has(p.client_id)));
  }

  redraw();
  if (options.open) view.open();
  client.start();
}
