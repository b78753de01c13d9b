// Entry point of the dashboard page: the session (login, logout, expiry: any
// 401 brings the login form back), the panels, and how they stay current.
// Live events from /ws update the panels in place; every (re)connect, every
// {"type":"resync"} and every hole in a job's log is repaired through REST.
// When events cannot arrive (socket down, or the API's health says Redis is
// disabled or down, or active jobs are silent) the page polls the REST routes.

import * as api from './api.js';
import { h, ROLE, isActiveJob } from './fmt.js';
import { Live, CLOSE_EXPIRED, CLOSE_POLICY } from './live.js';
import { SistemasPanel, PoolPanel, JobsPanel } from './panels.js';
import { JobDetail } from './detail.js';

const $ = (id) => document.getElementById(id);

const POLL_MS = 2000;          // REST polling period when events are not flowing
const QUIET_MS = 6000;         // active jobs and no event for this long: poll too
const SAFETY_MS = 30000;       // full refresh even when everything looks live
const HEALTH_MS = 15000;       // how often /api/health is asked about Redis

let canOperate = false;
let redis = 'unknown';         // from /api/health: ok | down | disabled
let lastFull = 0;
let lastHealth = 0;
let pollTimer = null;
let tickTimer = null;
let expiryTimer = null;
let liveInfo = { state: 'idle' };
let execKey = null;            // Idempotency-Key kept while the same request is retried
let execBody = '';

// ---- small UI helpers ----------------------------------------------------------

function toast(text, kind = '') {
  const t = h('div', { class: `toast ${kind}` }, text);
  $('toasts').append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 4000);
}

function reportError(e, what) {
  if (e && e.status === 401) return; // the login form is already back
  toast(`${what}: ${e && e.message ? e.message : e}`, 'error');
}

// ---- panels --------------------------------------------------------------------

const sistemas = new SistemasPanel({
  onSelection: (sel) => {
    const btn = $('exec-btn');
    btn.disabled = sel.size === 0;
    btn.textContent = sel.size ? `Executar selecionados (${sel.size})` : 'Executar selecionados';
  },
});
const jobs = new JobsPanel({
  onOpenJob: (id) => openJob(id),
  onCancel: (id, btn) => cancelJob(id, btn),
  onPage: () => refreshJobs().catch((e) => reportError(e, 'Erro ao carregar jobs')),
});
const pool = new PoolPanel({ onOpenJob: (id) => openJob(id) });
const detail = new JobDetail({
  onCancel: (id, btn) => cancelJob(id, btn),
  onChange: (id) => {
    jobs.setCurrent(id);
    const want = id === null ? '' : `#job/${id}`;
    if (location.hash !== want) history.replaceState(null, '', want || location.pathname + location.search);
  },
});

// ---- REST refreshes (coalesced) ------------------------------------------------

async function refreshSistemas() {
  sistemas.setAll(await api.get('/api/sistemas'));
}

async function refreshJobs() {
  if (!jobs.set(await api.get(jobs.query()))) jobs.set(await api.get(jobs.query()));
}

async function refreshPool() {
  pool.set(await api.get('/api/pool/status'), (id) => jobs.byId(id) || (detail.job && detail.job.id === id ? detail.job : null));
}

async function refreshHealth() {
  lastHealth = Date.now();
  try {
    const r = await api.request('GET', '/api/health', { auth: false });
    redis = r && r.redis ? r.redis : 'unknown';
  } catch (e) {
    redis = e.detail && e.status === 503 ? 'unknown' : redis;
  }
  showLive();
}

const REFRESH = { sistemas: refreshSistemas, jobs: refreshJobs, pool: refreshPool, detail: () => detail.refresh() };
const pending = new Set();
const running = new Set();
let flushTimer = null;

/** Asks for some refreshes soon; bursts of events fold into one request each,
 *  and a refresh asked while the same one runs is run again after it. */
function schedule(...kinds) {
  for (const k of kinds) pending.add(k);
  if (!flushTimer) flushTimer = setTimeout(flush, 150);
}

function flush() {
  flushTimer = null;
  for (const k of [...pending]) {
    if (running.has(k)) continue;
    pending.delete(k);
    running.add(k);
    REFRESH[k]().catch((e) => { if (e.status !== 401 && e.status !== 0) console.warn(k, e); })
      .finally(() => { running.delete(k); if (pending.has(k) && !flushTimer) flushTimer = setTimeout(flush, 150); });
  }
}

async function resync() {
  lastFull = Date.now();
  // Jobs first: the pool panel reads started_at from the jobs page.
  await Promise.allSettled([refreshJobs(), refreshSistemas()]);
  await Promise.allSettled([refreshPool(), detail.refresh()]);
}

// ---- live events ---------------------------------------------------------------

function onEvent(msg) {
  const p = msg.payload && typeof msg.payload === 'object' ? msg.payload : {};
  switch (msg.type) {
  case 'log':
    detail.applyLog(p);
    break;
  case 'status':
    if (!sistemas.applyStatus(p) || p.status === 'SUCCESS' || p.status === 'ERROR') schedule('sistemas');
    break;
  case 'job_status':
  case 'job_complete':
    jobs.applyEvent(p);
    detail.applyEvent(p);
    schedule('jobs', 'pool');
    if (p.job_id === detail.id) schedule('detail');
    if (msg.type === 'job_complete') schedule('sistemas');
    break;
  case 'resync':
    resync();
    break;
  default:
    break; // unknown types are ignored (API.md)
  }
}

const live = new Live({
  token: () => (api.getSession() ? api.getSession().token : null),
  onEvent,
  onOpen: () => { refreshHealth(); resync(); },
  onState: (s) => { liveInfo = s; showLive(); },
  onClose: (code, opened) => {
    if (code === CLOSE_EXPIRED) {
      endSession('expired');
      return false;
    }
    // 1008, or a handshake refused before opening: is the token still good?
    // A 401 here ends the session through the API's handler.
    if (code === CLOSE_POLICY || !opened) api.get('/api/auth/me').catch(() => {});
    if (opened) resync(); // the socket was lost: REST keeps the page current meanwhile
    return true;
  },
});

function polling() {
  return !live.isOpen() || redis === 'disabled' || redis === 'down'
    || ((jobs.hasActive() || (detail.job && isActiveJob(detail.job.status))) && Date.now() - live.lastEventAt > QUIET_MS);
}

function showLive() {
  const chip = $('live-chip');
  const banner = $('conn-banner');
  let state, text;
  if (live.isOpen() && redis !== 'disabled' && redis !== 'down') { state = 'live'; text = 'Tempo real'; }
  else if (live.isOpen() || redis === 'disabled') { state = 'poll'; text = 'Atualização periódica'; }
  else if (liveInfo.state === 'connecting' && !liveInfo.attempt) { state = 'poll'; text = 'Conectando…'; }
  else { state = 'off'; text = 'Desconectado'; }
  chip.dataset.state = state;
  if (chip.textContent !== text) chip.textContent = text;
  if (redis === 'disabled') chip.title = 'Redis desativado: a página consulta a API periodicamente';
  else chip.title = '';

  // With Redis disabled no events exist: a missing socket is expected then,
  // the chip says the page polls, and no alarm is raised.
  const lost = !live.isOpen() && liveInfo.attempt > 0 && liveInfo.state !== 'idle' && redis !== 'disabled';
  banner.hidden = !lost;
  if (lost) {
    let t = 'Conexão em tempo real perdida. ';
    if (liveInfo.state === 'waiting') {
      const s = Math.max(1, Math.ceil((liveInfo.until - Date.now()) / 1000));
      t += `Nova tentativa em ${s} s. `;
    } else {
      t += 'Reconectando… ';
    }
    t += 'Os dados continuam sendo atualizados pela API.';
    const el = $('conn-banner-text');
    if (el.textContent !== t) el.textContent = t;
  }
}

function pollTick() {
  const now = Date.now();
  if (now - lastHealth > HEALTH_MS) refreshHealth();
  if (now - lastFull > SAFETY_MS) { resync(); return; }
  if (polling()) schedule('jobs', 'pool', 'sistemas', 'detail');
}

// ---- actions -------------------------------------------------------------------

async function execute(ev) {
  ev.preventDefault();
  const err = $('exec-error');
  err.hidden = true;
  const ids = [...sistemas.selected].sort();
  if (!ids.length) return;
  const body = { sistemas: ids };
  const raw = $('exec-params').value.trim();
  if (raw) {
    let params;
    try { params = JSON.parse(raw); } catch (_) { params = undefined; }
    if (!params || typeof params !== 'object' || Array.isArray(params)) {
      err.textContent = 'Os parâmetros devem ser um objeto JSON, por exemplo {"dias": 3}.';
      err.hidden = false;
      $('exec-params').focus();
      return;
    }
    body.params = params;
  }
  // The same request retried (say after a network error) keeps its key, so the
  // server returns the job it may already have created instead of a second one.
  const sig = JSON.stringify(body);
  if (sig !== execBody || !execKey) { execKey = api.newIdempotencyKey(); execBody = sig; }
  const btn = $('exec-btn');
  btn.disabled = true;
  try {
    const r = await api.post('/api/execute', body, { headers: { 'Idempotency-Key': execKey } });
    execKey = null;
    toast(`Job #${r.job_id} enfileirado (${ids.join(', ')}).`);
    sistemas.selectAll(false);
    schedule('jobs', 'pool', 'sistemas');
    openJob(r.job_id, { focus: false });
  } catch (e) {
    if (e.status === 401) return;
    err.textContent = e.status === 403 ? 'Seu perfil não pode executar jobs.' : `Não foi possível executar: ${e.message}`;
    err.hidden = false;
  } finally {
    btn.disabled = sistemas.selected.size === 0;
  }
}

async function cancelJob(id, btn) {
  if (btn) btn.disabled = true;
  try {
    const r = await api.post(`/api/jobs/${encodeURIComponent(id)}/cancel`);
    toast(r && r.status === 'cancelled' ? `Job #${id} cancelado.` : `Cancelamento do job #${id} solicitado.`);
  } catch (e) {
    if (e.status === 409) toast(`O job #${id} já terminou.`);
    else reportError(e, `Não foi possível cancelar o job #${id}`);
  } finally {
    if (btn && btn.isConnected) btn.disabled = false;
    schedule('jobs', 'pool', 'detail');
  }
}

function openJob(id, opt) {
  detail.open(Number(id), opt).catch((e) => reportError(e, `Erro ao abrir o job #${id}`));
}

// ---- session -------------------------------------------------------------------

function showLogin(message) {
  $('dash-view').hidden = true;
  $('session').hidden = true;
  $('conn-banner').hidden = true;
  $('login-view').hidden = false;
  const e = $('login-error');
  e.textContent = message || '';
  e.hidden = !message;
  $('login-pass').value = '';
  const user = $('login-user');
  (user.value ? $('login-pass') : user).focus();
}

function endSession(reason) {
  // An expired session comes back to the form with its user name filled in.
  const s = api.getSession();
  $('login-user').value = reason === 'expired' && s ? s.user.username : '';
  clearTimeout(expiryTimer);
  clearInterval(pollTimer);
  clearInterval(tickTimer);
  live.stop();
  api.clearSession();
  detail.close();
  showLogin(reason === 'expired' ? 'Sua sessão expirou. Entre novamente.' : '');
}

function startDashboard() {
  const s = api.getSession();
  canOperate = s.user.role === 'operator' || s.user.role === 'admin';
  document.body.classList.toggle('viewer', !canOperate);
  for (const el of document.querySelectorAll('.operator-only')) {
    if (el.id !== 'detail-cancel') el.hidden = !canOperate;
  }
  sistemas.setRole(canOperate);
  jobs.canOperate = canOperate;
  detail.canOperate = canOperate;
  $('who-name').textContent = s.user.username;
  $('who-role').textContent = ROLE[s.user.role] || s.user.role;
  $('login-view').hidden = true;
  $('session').hidden = false;
  $('dash-view').hidden = false;

  clearTimeout(expiryTimer);
  expiryTimer = setTimeout(() => endSession('expired'), Math.max(0, s.expiresAt - Date.now()));
  live.start();
  refreshHealth();
  resync().then(() => {
    const m = /^#job\/(\d+)$/.exec(location.hash);
    if (m && detail.id === null) openJob(Number(m[1]));
  });
  clearInterval(pollTimer);
  pollTimer = setInterval(pollTick, POLL_MS);
  clearInterval(tickTimer);
  tickTimer = setInterval(() => { jobs.tick(); pool.tick(); detail.tick(); showLive(); }, 1000);
}

async function onLogin(ev) {
  ev.preventDefault();
  const user = $('login-user').value.trim();
  const pass = $('login-pass').value;
  const err = $('login-error');
  if (!user || !pass) {
    err.textContent = 'Informe usuário e senha.';
    err.hidden = false;
    return;
  }
  const btn = $('login-submit');
  btn.disabled = true;
  err.hidden = true;
  try {
    await api.login(user, pass);
    startDashboard();
    $('conteudo').focus(); // the form that had focus is gone
  } catch (e) {
    if (e.status === 401) err.textContent = 'Usuário ou senha inválidos.';
    else if (e.status === 429) err.textContent = `Muitas tentativas. Tente novamente em ${e.retryAfter || 'alguns'} segundos.`;
    else err.textContent = `Não foi possível entrar: ${e.message}`;
    err.hidden = false;
  } finally {
    btn.disabled = false;
  }
}

// ---- wiring --------------------------------------------------------------------

api.setUnauthorizedHandler(() => endSession('expired'));
$('login-form').addEventListener('submit', onLogin);
$('logout').addEventListener('click', () => endSession('logout'));
$('exec-form').addEventListener('submit', execute);
$('sel-all').addEventListener('click', () => sistemas.selectAll(true));
$('sel-none').addEventListener('click', () => sistemas.selectAll(false));
$('conn-retry').addEventListener('click', () => live.connectNow());
window.addEventListener('hashchange', () => {
  const m = /^#job\/(\d+)$/.exec(location.hash);
  if (m && api.getSession()) openJob(Number(m[1]));
});

if (api.getSession()) startDashboard();
else showLogin('');
