// The job detail panel: the job's facts, its final status, a cancel button for
// operators, and its live log. Log lines come from two sources that may
// overlap or leave holes: websocket `log` events and REST pages
// (GET /api/jobs/{id}/logs?after=<last seq>). LogView keeps seq order and
// drops repeats; a hole seen in the live stream, a reconnect or a poll runs
// catchUp(), one at a time, until REST has nothing newer.

import * as api from './api.js';
import { h, JOB_STATUS, fmtDate, fmtDuration, jobDuration, since, isActiveJob, isStaleStatus } from './fmt.js';
import { LogView } from './logview.js';

const $ = (id) => document.getElementById(id);
let pageSize = 1000; // lines per REST page (falls back if the server refuses it)

export class JobDetail {
  constructor({ onCancel, onChange }) {
    this.section = $('detail');
    this.title = $('detail-title');
    this.badge = $('detail-status');
    this.facts = $('detail-facts');
    this.error = $('detail-error');
    this.cancelBtn = $('detail-cancel');
    this.onChange = onChange;
    this.canOperate = false;
    this.id = null;
    this.job = null;
    this.catching = false;
    this.again = false;
    this.failedAt = 0;      // ms: when a catch-up last failed
    this.log = new LogView({
      viewport: $('log'), spacer: $('log-spacer'), count: $('log-count'), follow: $('log-follow'),
      jump: $('log-jump'), sistema: $('log-sistema'), level: $('log-level'),
    });
    $('detail-close').addEventListener('click', () => this.close());
    this.cancelBtn.addEventListener('click', () => onCancel(this.id, this.cancelBtn));
    $('log-download').addEventListener('click', () => this.download());
  }

  /** Shows job id (loading its facts and whole log). */
  async open(id, { focus = true } = {}) {
    if (this.id !== id) {
      this.id = id;
      this.job = null;
      this.title.textContent = `Job #${id}`;
      this.badge.textContent = '';
      this.badge.className = 'badge';
      this.facts.replaceChildren();
      this.error.hidden = true;
      this.cancelBtn.hidden = true;
      this.log.reset(id);
    }
    this.section.hidden = false;
    this.onChange(id);
    if (focus) {
      this.section.scrollIntoView({ block: 'start', behavior: 'smooth' });
      this.title.setAttribute('tabindex', '-1');
      this.title.focus({ preventScroll: true });
    }
    await this.refresh();
  }

  close() {
    this.id = null;
    this.job = null;
    this.section.hidden = true;
    this.log.reset(null);
    this.onChange(null);
  }

  /** Reloads the job and catches its log up (REST). */
  async refresh() {
    const id = this.id;
    if (id === null) return;
    try {
      const job = await api.get(`/api/jobs/${encodeURIComponent(id)}`);
      if (this.id !== id) return;
      this.setJob(job);
    } catch (e) {
      if (this.id !== id) return;
      if (e.status === 404) {
        this.error.textContent = `O job #${id} não existe.`;
        this.error.hidden = false;
        return;
      }
      throw e;
    }
    await this.catchUp();
  }

  setJob(job) {
    const first = !this.job;
    this.job = job;
    const st = JOB_STATUS[job.status] ? job.status : 'pending';
    this.badge.className = `badge st-${st}`;
    this.badge.textContent = JOB_STATUS[st];
    this.cancelBtn.hidden = !(this.canOperate && isActiveJob(job.status));
    if (first && Array.isArray(job.sistemas)) for (const s of job.sistemas) if (!this.log.sistemas.has(s)) this.log.addSistema(s);
    const dur = jobDuration(job);
    const fact = (k, v, attrs, wide) => h('div', { class: wide ? 'wide' : null }, h('dt', null, k), h('dd', attrs, v));
    this.facts.replaceChildren(
      fact('Sistemas', Array.isArray(job.sistemas) ? job.sistemas.join(', ') : '—'),
      fact('Iniciado por', job.created_by || '—'),
      fact('Criado em', fmtDate(job.created_at)),
      fact('Início', fmtDate(job.started_at)),
      fact('Fim', fmtDate(job.finished_at)),
      fact('Duração', fmtDuration(dur), job.status === 'running' && job.started_at ? { 'data-since': job.started_at } : null),
      fact('Slot', job.worker_slot === null || job.worker_slot === undefined ? '—' : String(job.worker_slot)),
      fact('Código de saída', job.exit_code === null || job.exit_code === undefined ? '—' : String(job.exit_code)),
      job.params && Object.keys(job.params).length ? fact('Parâmetros', JSON.stringify(job.params), null, true) : null,
    );
    this.error.textContent = job.error_message || '';
    this.error.hidden = !job.error_message;
  }

  /** A job_status/job_complete event for the open job. */
  applyEvent(p) {
    if (!this.job || p.job_id !== this.id) return;
    const status = p.status && !isStaleStatus(this.job.status, p.status) ? p.status : this.job.status;
    this.setJob({ ...this.job, status, ...('duracao_segundos' in p ? { duracao_segundos: p.duracao_segundos } : {}) });
  }

  /** A `log` event: appended if it is the next line, else a catch-up. */
  applyLog(p) {
    if (p.job_id !== this.id) return;
    // A failed catch-up is retried by the next poll or reconnect, or by an
    // event a second later (not by every event of a busy stream).
    if (this.log.add(p, true) === 'gap' && Date.now() - this.failedAt > 1000) this.catchUp().catch(() => {});
  }

  /** Fetches every line after the last one held, page by page; concurrent
   *  calls fold into one more round. Errors other than 401 are retried by the
   *  next poll, reconnect or event. */
  async catchUp() {
    if (this.id === null) return;
    if (this.catching) { this.again = true; return; }
    this.catching = true;
    const id = this.id;
    try {
      do {
        this.again = false;
        for (;;) {
          const after = this.log.lastSeq;
          let r;
          try {
            r = await api.get(`/api/jobs/${encodeURIComponent(id)}/logs?after=${after}&limit=${pageSize}`);
          } catch (e) {
            if (e.status === 422 && pageSize > 100) { pageSize = 100; continue; }
            this.failedAt = Date.now();
            throw e;
          }
          if (this.id !== id) return;
          const lines = r && Array.isArray(r.lines) ? r.lines : [];
          for (const l of lines) this.log.add(l, false);
          // Stop on an empty page, not a short one: the server may cap limit.
          if (lines.length === 0) break;
        }
      } while (this.again && this.id === id);
    } finally {
      this.catching = false;
    }
  }

  tick() {
    const dd = this.facts.querySelector('[data-since]');
    if (dd) dd.textContent = fmtDuration(since(dd.dataset.since));
  }

  download() {
    const blob = new Blob([this.log.toText()], { type: 'text/plain;charset=utf-8' });
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: `job-${this.id}.log` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }
}
