// The live bus (GET /api/v1/events/ws): one WebSocket for the signed-in app,
// reconnected with backoff, dispatching messages by type.

// The live bus's message types, exactly as the server's allowlist
// (server/src/bus.rs MESSAGE_TYPES). A test checks the two agree.
export const BUS_MESSAGE_TYPES = ["activity_logged", "activity_cleared", "settings_changed"];

const handlers = new Map(BUS_MESSAGE_TYPES.map((t) => [t, new Set()]));
const stateListeners = new Set();
let socket = null;
let wanted = false;
let retry = 0;
let timer = null;
let onLost = null;

/** `fn(data)` for every message of `type`; returns the unsubscribe. */
export function on(type, fn) {
  const set = handlers.get(type);
  if (!set) throw new Error(`unknown bus message type ${type}`);
  set.add(fn);
  return () => set.delete(fn);
}

/** `fn(connected)` whenever the socket opens or closes. */
export function onState(fn) {
  stateListeners.add(fn);
  return () => stateListeners.delete(fn);
}

export const connected = () => socket !== null && socket.readyState === WebSocket.OPEN;

/** Opens the bus; `lost()` is asked, after a close, whether to keep trying. */
export function connect(lost) {
  onLost = lost;
  wanted = true;
  open();
}

export function disconnect() {
  wanted = false;
  clearTimeout(timer);
  if (socket) socket.close();
  socket = null;
}

function open() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/api/v1/events/ws`);
  socket = ws;
  ws.addEventListener("open", () => {
    retry = 0;
    for (const fn of stateListeners) fn(true);
  });
  ws.addEventListener("message", (ev) => {
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return;
    }
    const set = handlers.get(msg && msg.type);
    if (!set) return; // not in the allowlist: ignored
    for (const fn of set) fn(msg.data);
  });
  ws.addEventListener("close", async () => {
    if (socket !== ws) return;
    socket = null;
    for (const fn of stateListeners) fn(false);
    if (!wanted) return;
    // A close can mean the key was revoked; ask before reconnecting.
    const keepTrying = onLost ? await onLost() : true;
    if (!keepTrying || !wanted) return;
    retry = Math.min(retry + 1, 6);
    timer = setTimeout(open, 250 * 2 ** retry);
  });
}
