// REST client of the public API (API.md). Holds the session (token, user,
// expiry) in sessionStorage, adds the Bearer header, turns error bodies
// ({"detail": ...}) into ApiError, and reports every 401 to one handler so the
// page goes back to the login form (an expired session is renewed by a fresh
// login, never silently).

const KEY = 'etl.session';

export class ApiError extends Error {
  constructor(status, detail, retryAfter) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

let session = load();
let onUnauthorized = () => {};

function load() {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) || 'null');
    if (s && typeof s.token === 'string' && s.user && s.expiresAt > Date.now()) return s;
  } catch (_) { /* unreadable: no session */ }
  sessionStorage.removeItem(KEY);
  return null;
}

export function getSession() { return session; }

export function clearSession() {
  session = null;
  sessionStorage.removeItem(KEY);
}

/** fn(reason) is called once per 401 answer of an authenticated request. */
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

function messageFor(status, body) {
  if (body && typeof body.detail === 'string') return body.detail;
  if (body && Array.isArray(body.detail)) return body.detail.map((d) => d.msg || String(d)).join('; ');
  return {
    0: 'Servidor inacessível',
    401: 'Não autorizado',
    403: 'Permissão negada',
    404: 'Não encontrado',
    409: 'Conflito com o estado atual',
    429: 'Muitas tentativas',
    503: 'Serviço indisponível',
  }[status] || `Erro HTTP ${status}`;
}

/** Performs one request. Resolves to the parsed JSON body (or null for 204);
 *  rejects with ApiError (status 0 when the server cannot be reached). */
export async function request(method, path, { body, headers, auth = true, signal } = {}) {
  const h = { Accept: 'application/json', ...headers };
  if (body !== undefined) h['Content-Type'] = 'application/json';
  const tok = session && session.token;
  if (auth && tok) h.Authorization = `Bearer ${tok}`;
  let res;
  try {
    res = await fetch(path, {
      method, headers: h, body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store', credentials: 'same-origin', signal,
    });
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, messageFor(0));
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try { data = JSON.parse(text); } catch (_) { data = null; }
  }
  if (!res.ok) {
    const err = new ApiError(res.status, messageFor(res.status, data), res.headers.get('Retry-After'));
    // A 401 on a request made with our token means the session is over
    // (expired, user deleted, secret rotated). The login itself is excluded.
    if (res.status === 401 && auth && tok && session && session.token === tok) {
      onUnauthorized('expired'); // may still read the session (the user name)
      clearSession();
    }
    throw err;
  }
  return data;
}

export const get = (path, opt) => request('GET', path, opt);
export const post = (path, body, opt) => request('POST', path, { ...opt, body });

export async function login(username, password) {
  const r = await request('POST', '/api/auth/login', { body: { username, password }, auth: false });
  const ttl = Number(r.expires_in) > 0 ? Number(r.expires_in) : 3600;
  session = {
    token: r.access_token,
    user: { username: r.user && r.user.username ? r.user.username : username, role: (r.user && r.user.role) || 'viewer' },
    expiresAt: Date.now() + ttl * 1000,
  };
  sessionStorage.setItem(KEY, JSON.stringify(session));
  return session;
}

/** A random key for Idempotency-Key: (crypto.getRandomValues works outside
 *  secure contexts too, unlike crypto.randomUUID). */
export function newIdempotencyKey() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}
