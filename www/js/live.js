// The live-events connection: one WebSocket to /ws on the page's own origin
// (ws: or wss: to match the page), token in the query as API.md says. When it
// drops, it reconnects with exponential backoff, each wait drawn at random
// between half and all of the step (jitter), so that a restarted etl-wsd is
// not hit by every browser at the same instant. The owner gets every parsed
// event, every state change (to show the banner) and every (re)open (to
// catch up through REST: events sent while we were away are gone, the
// database is the source of truth).

const BASE_MS = 500;      // first retry after 0.25–0.5 s
const MAX_MS = 15000;     // retries never wait more than 15 s
const STABLE_MS = 5000;   // a connection open this long resets the backoff

export const CLOSE_EXPIRED = 4001;   // token expired (server)
export const CLOSE_POLICY = 1008;    // invalid token / origin (server)
export const CLOSE_TOO_SLOW = 4008;  // we lagged behind (server)

export class Live {
  /**
   * @param {object} o
   * @param {() => string|null} o.token     current access token
   * @param {(msg: object) => void} o.onEvent  each {"type", "payload"} message
   * @param {() => void} o.onOpen           after every successful (re)open
   * @param {(s: object) => void} o.onState {state, attempt, delayMs, code}
   * @param {(code: number, opened: boolean) => boolean} o.onClose
   *        called on each close; returning false stops reconnecting
   */
  constructor(o) {
    this.o = o;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.stopped = true;
    this.openedAt = 0;
    this.lastEventAt = 0;
    this.state = 'idle';
    this.onWake = () => { if (this.state === 'waiting') this.connectNow(); };
  }

  url() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${proto}//${location.host}/ws?token=${encodeURIComponent(this.o.token() || '')}`;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt = 0;
    window.addEventListener('online', this.onWake);
    document.addEventListener('visibilitychange', this.onWake);
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onWake);
    document.removeEventListener('visibilitychange', this.onWake);
    clearTimeout(this.timer);
    this.timer = null;
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(1000, 'logout'); } catch (_) { /* already closed */ }
    }
    this.setState('idle');
  }

  isOpen() { return !!this.ws && this.ws.readyState === WebSocket.OPEN; }

  /** Skips the wait of the current backoff. */
  connectNow() {
    if (this.stopped || this.isOpen() || (this.ws && this.ws.readyState === WebSocket.CONNECTING)) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.connect();
  }

  setState(state, extra = {}) {
    this.state = state;
    this.o.onState({ state, attempt: this.attempt, ...extra });
  }

  connect() {
    if (this.stopped) return;
    this.setState('connecting');
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch (_) {
      this.retry(0, false);
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.openedAt = Date.now();
      this.setState('open');
      this.o.onOpen();
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data !== 'string') return;
      let msg;
      try { msg = JSON.parse(ev.data); } catch (_) { return; }
      if (!msg || typeof msg.type !== 'string') return;
      this.lastEventAt = Date.now();
      this.o.onEvent(msg);
    };
    ws.onerror = () => { /* onclose follows and carries the code */ };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (opened && Date.now() - this.openedAt > STABLE_MS) this.attempt = 0;
      this.retry(ev.code, opened);
    };
  }

  retry(code, opened) {
    if (this.stopped) return;
    if (this.o.onClose(code, opened) === false) {
      this.stop();
      return;
    }
    // A client closed for being too slow comes back at once: it has to catch
    // up through REST anyway, and waiting only makes it further behind.
    const cap = Math.min(MAX_MS, BASE_MS * 2 ** Math.min(this.attempt, 10));
    const delayMs = code === CLOSE_TOO_SLOW && this.attempt === 0 ? 100 : Math.round(cap / 2 + Math.random() * cap / 2);
    this.attempt += 1;
    this.setState('waiting', { delayMs, code, until: Date.now() + delayMs });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => { this.timer = null; this.connect(); }, delayMs);
  }
}
