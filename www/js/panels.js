// The three summary panels of the dashboard: Sistemas (cards with status,
// progress, last message and last run, selectable by operators), Pool (one row
// per slot with its job and elapsed time, or the single-mode current job) and
// Jobs (paged table filtered by status). Each keeps its own DOM and is updated
// in place from REST answers and live events; names and messages are text.

import {
  h, SISTEMA_STATUS, JOB_STATUS, fmtDate, fmtDuration, fmtClock, since, jobDuration, isActiveJob, isStaleStatus, nf,
} from './fmt.js';

const $ = (id) => document.getElementById(id);

// ---- Sistemas ----------------------------------------------------------------

export class SistemasPanel {
  constructor({ onSelection }) {
    this.list = $('sist-list');
    this.empty = $('sist-empty');
    this.onSelection = onSelection;
    this.canOperate = false;
    this.items = new Map();    // id → {data, li, refs}
    this.selected = new Set();
    this.order = '';
  }

  setRole(canOperate) {
    this.canOperate = canOperate;
    this.order = '';           // rebuild the cards (checkboxes come and go)
    this.selected.clear();
  }

  get(id) { return this.items.get(id) && this.items.get(id).data; }

  /** Replaces the whole list (GET /api/sistemas). */
  setAll(list) {
    const ids = list.map((s) => s.id).join('\n');
    if (ids !== this.order) {
      this.order = ids;
      this.items = new Map();
      this.list.replaceChildren();
      for (const s of list) {
        const it = this.build(s);
        this.items.set(s.id, it);
        this.list.append(it.li);
      }
      for (const id of [...this.selected]) if (!this.items.has(id)) this.selected.delete(id);
    }
    for (const s of list) this.update(s);
    this.empty.hidden = list.length > 0;
    this.onSelection(this.selected);
  }

  /** Applies a `status` event; returns false if the sistema is unknown, or
   *  if the event would take a RUNNING sistema back to PENDING or IDLE: a
   *  sistema can go back (a new job makes it PENDING again), but not while
   *  it runs, so that event is one the API published before a worker's
   *  RUNNING and reached the page after it. REST decides then (the caller
   *  reloads). */
  applyStatus(p) {
    const it = this.items.get(p.sistema_id);
    if (!it) return false;
    if (it.data.status === 'RUNNING' && (p.status === 'PENDING' || p.status === 'IDLE')) return false;
    const d = { ...it.data, status: p.status || it.data.status };
    if (typeof p.progresso === 'number') d.progresso = p.progresso;
    if ('mensagem' in p) d.mensagem = p.mensagem;
    this.update(d);
    return true;
  }

  build(s) {
    const idBox = `sel-${s.id}`;
    const box = this.canOperate
      ? h('input', { type: 'checkbox', id: idBox, value: s.id, 'aria-describedby': `st-${s.id}` }) : null;
    const name = this.canOperate ? h('label', { for: idBox, class: 'sist-name' }) : h('span', { class: 'sist-name' });
    const badge = h('span', { class: 'badge', id: `st-${s.id}` });
    const fill = h('div', { class: 'progress-fill' });
    const bar = h('div', {
      class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-label': `Progresso de ${s.nome || s.id}`,
    }, fill);
    const msg = h('div', { class: 'sist-msg' });
    const lastRun = h('span');
    const pct = h('span');
    const li = h('li', { class: 'sist', dataset: { id: s.id } }, box, name, badge, bar, msg, h('div', { class: 'sist-last' }, lastRun, pct));
    if (box) {
      box.addEventListener('change', () => {
        if (box.checked) this.selected.add(s.id); else this.selected.delete(s.id);
        li.classList.toggle('selected', box.checked);
        this.onSelection(this.selected);
      });
    }
    return { data: s, li, refs: { box, name, badge, bar, fill, msg, lastRun, pct } };
  }

  update(s) {
    const it = this.items.get(s.id);
    if (!it) return;
    it.data = s;
    const r = it.refs;
    const st = SISTEMA_STATUS[s.status] ? s.status : 'IDLE';
    const prog = Math.max(0, Math.min(100, Number(s.progresso) || 0));
    r.name.replaceChildren(document.createTextNode(s.nome || s.id), h('small', null, s.id));
    if (!s.ativo) r.name.lastChild.append(' · inativo');
    r.badge.className = `badge st-${st}`;
    r.badge.textContent = SISTEMA_STATUS[st];
    r.bar.dataset.status = st;
    r.bar.setAttribute('aria-valuenow', String(prog));
    r.fill.style.width = `${prog}%`;
    r.msg.textContent = s.mensagem || (s.descricao || '');
    r.msg.classList.toggle('muted', !s.mensagem);
    r.lastRun.textContent = `Última execução: ${fmtDate(s.ultima_execucao)}`;
    r.pct.textContent = `${prog}%`;
    it.li.classList.toggle('inactive', !s.ativo);
    if (r.box) {
      r.box.disabled = !s.ativo;
      if (!s.ativo && this.selected.delete(s.id)) this.onSelection(this.selected);
      r.box.checked = this.selected.has(s.id);
      it.li.classList.toggle('selected', r.box.checked);
    }
  }

  selectAll(on) {
    this.selected.clear();
    for (const [id, it] of this.items) if (on && it.data.ativo) this.selected.add(id);
    for (const it of this.items.values()) this.update(it.data);
    this.onSelection(this.selected);
  }
}

// ---- Pool --------------------------------------------------------------------

export class PoolPanel {
  constructor({ onOpenJob }) {
    this.mode = $('pool-mode');
    this.list = $('pool-slots');
    this.down = $('pool-down');
    this.onOpenJob = onOpenJob;
    this.pool = null;
  }

  jobLink(id) {
    return h('button', { type: 'button', class: 'btn btn-ghost btn-small', onclick: () => this.onOpenJob(id) }, `Job #${id}`);
  }

  set(pool, jobsById) {
    this.pool = pool;
    const rows = [];
    if (pool.mode === 'pool') {
      this.mode.textContent = `Modo pool · ${pool.max_workers} workers`;
      this.down.hidden = pool.running !== false;
      for (const s of pool.slots || []) {
        const busy = s.job_id !== null && s.job_id !== undefined;
        rows.push(h('li', { class: `slot ${busy ? 'busy' : 'idle'}`, dataset: { slot: s.slot_id } },
          h('span', { class: 'slot-id' }, `Slot ${s.slot_id}`),
          h('span', { class: 'slot-job' }, busy ? this.jobLink(s.job_id) : 'Livre'),
          h('span', { class: 'slot-time', dataset: busy && s.started_at ? { since: s.started_at } : {} },
            busy && s.started_at ? fmtClock(since(s.started_at)) : '')));
      }
    } else {
      this.mode.textContent = 'Modo único';
      this.down.hidden = true;
      const id = pool.current_job_id;
      const job = id !== null && id !== undefined ? jobsById(id) : null;
      const start = job && job.started_at;
      rows.push(h('li', { class: `slot ${id !== null && id !== undefined ? 'busy' : 'idle'}`, dataset: { slot: 0 } },
        h('span', { class: 'slot-id' }, 'Atual'),
        h('span', { class: 'slot-job' }, id !== null && id !== undefined ? this.jobLink(id) : 'Nenhum job em execução'),
        h('span', { class: 'slot-time', dataset: start ? { since: start } : {} }, start ? fmtClock(since(start)) : '')));
    }
    this.list.replaceChildren(...rows);
  }

  tick() {
    for (const el of this.list.querySelectorAll('[data-since]')) el.textContent = fmtClock(since(el.dataset.since));
  }
}

// ---- Jobs --------------------------------------------------------------------

export const JOBS_PAGE = 20;

export class JobsPanel {
  constructor({ onOpenJob, onCancel, onPage }) {
    this.body = $('jobs-body');
    this.empty = $('jobs-empty');
    this.range = $('jobs-range');
    this.prev = $('jobs-prev');
    this.next = $('jobs-next');
    this.filter = $('jobs-status');
    this.onOpenJob = onOpenJob;
    this.onCancel = onCancel;
    this.canOperate = false;
    this.offset = 0;
    this.total = 0;
    this.items = [];
    this.current = null;
    this.prev.addEventListener('click', () => { this.offset = Math.max(0, this.offset - JOBS_PAGE); onPage(); });
    this.next.addEventListener('click', () => { this.offset += JOBS_PAGE; onPage(); });
    this.filter.addEventListener('change', () => { this.offset = 0; onPage(); });
  }

  query() {
    const q = new URLSearchParams({ limit: String(JOBS_PAGE), offset: String(this.offset) });
    if (this.filter.value) q.set('status', this.filter.value);
    return `/api/jobs?${q}`;
  }

  byId(id) { return this.items.find((j) => j.id === id) || null; }

  set(page) {
    this.items = Array.isArray(page.items) ? page.items : [];
    this.total = Number(page.total) || 0;
    if (this.offset > 0 && this.offset >= this.total && this.items.length === 0) {
      this.offset = Math.max(0, Math.floor((this.total - 1) / JOBS_PAGE) * JOBS_PAGE);
      return false; // caller reloads the last non-empty page
    }
    this.render();
    return true;
  }

  /** Applies a job_status / job_complete event to a row on this page. */
  applyEvent(p) {
    const j = this.byId(p.job_id);
    if (!j) return false;
    if (p.status && isStaleStatus(j.status, p.status)) return true; // see fmt.js
    if (p.status) j.status = p.status;
    if ('duracao_segundos' in p) j.duracao_segundos = p.duracao_segundos;
    if ('worker_slot' in p) j.worker_slot = p.worker_slot;
    this.render();
    return true;
  }

  setCurrent(id) {
    this.current = id;
    for (const tr of this.body.rows) tr.classList.toggle('current', Number(tr.dataset.id) === id);
  }

  render() {
    // Keep keyboard focus on the same button across a re-render.
    const f = document.activeElement;
    const keep = f && this.body.contains(f) ? [f.closest('tr').dataset.id, f.dataset.act] : null;
    const rows = this.items.map((j) => {
      const sistemas = Array.isArray(j.sistemas) ? j.sistemas.join(', ') : '';
      const dur = jobDuration(j);
      const st = JOB_STATUS[j.status] ? j.status : 'pending';
      const tr = h('tr', { dataset: { id: j.id }, class: j.id === this.current ? 'current' : null },
        h('td', { class: 'num', 'data-label': 'Job' }, `#${j.id}`),
        h('td', { 'data-label': 'Status' }, h('span', { class: `badge st-${st}` }, JOB_STATUS[st])),
        h('td', { class: 'sistemas-cell', 'data-label': 'Sistemas' }, sistemas),
        h('td', { 'data-label': 'Iniciado por' }, j.created_by || '—'),
        h('td', { class: 'num', 'data-label': 'Criado em' }, fmtDate(j.created_at)),
        h('td', {
          class: 'num', 'data-label': 'Duração', dataset: j.status === 'running' && j.started_at ? { since: j.started_at } : {},
        }, fmtDuration(dur)),
        h('td', { class: 'actions' },
          h('button', {
            type: 'button', class: 'btn btn-ghost btn-small', dataset: { act: 'open' },
            'aria-label': `Ver log do job ${j.id}`, onclick: () => this.onOpenJob(j.id),
          }, 'Ver log'),
          this.canOperate && isActiveJob(j.status) ? h('button', {
            type: 'button', class: 'btn btn-danger btn-small', dataset: { act: 'cancel' },
            'aria-label': `Cancelar job ${j.id}`, onclick: (e) => this.onCancel(j.id, e.currentTarget),
          }, 'Cancelar') : null));
      return tr;
    });
    this.body.replaceChildren(...rows);
    if (keep) {
      const b = this.body.querySelector(`tr[data-id="${CSS.escape(keep[0])}"] [data-act="${CSS.escape(keep[1] || '')}"]`)
        || this.body.querySelector(`tr[data-id="${CSS.escape(keep[0])}"] [data-act="open"]`);
      if (b) b.focus();
    }
    this.empty.hidden = this.items.length > 0;
    const a = this.items.length ? this.offset + 1 : 0;
    const b = this.offset + this.items.length;
    this.range.textContent = `${nf.format(a)}–${nf.format(b)} de ${nf.format(this.total)}`;
    this.prev.disabled = this.offset === 0;
    this.next.disabled = b >= this.total;
  }

  tick() {
    for (const el of this.body.querySelectorAll('[data-since]')) el.textContent = fmtDuration(since(el.dataset.since));
  }

  hasActive() { return this.items.some((j) => isActiveJob(j.status)); }
}
