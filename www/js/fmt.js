// Small helpers shared by the page: building DOM nodes (text only: every
// string goes through a text node, never through innerHTML), the pt-BR labels
// of statuses, and date/duration formatting.

/** h('div', {class: 'x', dataset: {id: 1}}, 'text', child) → element. Strings
 *  and numbers become text nodes; null/undefined/false children are skipped. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const SISTEMA_STATUS = {
  IDLE: 'Ocioso',
  PENDING: 'Pendente',
  RUNNING: 'Executando',
  SUCCESS: 'Sucesso',
  ERROR: 'Erro',
};

export const JOB_STATUS = {
  pending: 'Pendente',
  running: 'Em execução',
  completed: 'Concluído',
  error: 'Erro',
  cancelled: 'Cancelado',
};

export const ROLE = { viewer: 'leitura', operator: 'operador', admin: 'administrador' };

export const isActiveJob = (st) => st === 'pending' || st === 'running';

// A job only moves forward: pending, running, then one of the ends.
const JOB_STAGE = { pending: 0, running: 1, completed: 2, error: 2, cancelled: 2 };

/** Whether an event's status would move a job back (the API's `pending`
 *  reaching the page after a worker's `running`: events from different
 *  processes need not arrive in order). Such an event is stale. */
export const isStaleStatus = (cur, next) => (JOB_STAGE[next] ?? 0) < (JOB_STAGE[cur] ?? 0);

const dateFmt = new Intl.DateTimeFormat('pt-BR', {
  day: '2-digit', month: '2-digit', year: 'numeric',
  hour: '2-digit', minute: '2-digit', second: '2-digit',
});
const timeFmt = new Intl.DateTimeFormat('pt-BR', {
  hour: '2-digit', minute: '2-digit', second: '2-digit', fractionalSecondDigits: 3,
});

/** ISO-8601 → "28/11/2026, 17:41:23" in local time; '—' for null/invalid. */
export function fmtDate(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : dateFmt.format(d);
}

/** ISO-8601 → "17:41:23,120" (log timestamps). */
export function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : timeFmt.format(d);
}

/** Seconds → "1 h 02 min", "3 min 05 s", "12,4 s". */
export function fmtDuration(sec) {
  if (sec === null || sec === undefined || Number.isNaN(sec)) return '—';
  if (sec < 0) sec = 0;
  if (sec < 60) return `${sec < 10 ? sec.toFixed(1).replace('.', ',') : Math.floor(sec)} s`;
  const s = Math.floor(sec) % 60, m = Math.floor(sec / 60) % 60, hr = Math.floor(sec / 3600);
  const p = (n) => String(n).padStart(2, '0');
  return hr ? `${hr} h ${p(m)} min` : `${m} min ${p(s)} s`;
}

/** Seconds → "00:01:23" (clock-style elapsed time of a running slot). */
export function fmtClock(sec) {
  sec = Math.max(0, Math.floor(sec || 0));
  const p = (n) => String(n).padStart(2, '0');
  return `${p(Math.floor(sec / 3600))}:${p(Math.floor(sec / 60) % 60)}:${p(sec % 60)}`;
}

/** Seconds elapsed since an ISO time (for running jobs and slots). */
export function since(iso, now = Date.now()) {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : (now - t) / 1000;
}

/** Duration of a job: its duracao_segundos once finished, else the time since
 *  it started (null while pending). */
export function jobDuration(job, now = Date.now()) {
  if (job.duracao_segundos !== null && job.duracao_segundos !== undefined) return job.duracao_segundos;
  if (job.status === 'running' && job.started_at) return since(job.started_at, now);
  return null;
}

export const nf = new Intl.NumberFormat('pt-BR');
