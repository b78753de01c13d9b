// The job log viewer: keeps every line of one job in memory (ordered by seq,
// each seq at most once) and shows only the rows in view (a virtual list with
// fixed row height), so 100,000 lines and more cost a few dozen DOM nodes.
// Lines are shown with textContent only. Auto-scroll follows the end of the
// log until the user scrolls up, and resumes when they come back to the end.

import { h, fmtTime, nf } from './fmt.js';

const ROW_H = 20;          // px, must match --row-h in app.css
const OVERSCAN = 12;       // rows rendered above and below the viewport
const MAX_LINES = 1000000; // beyond this the oldest lines are dropped (with a notice)
const MAX_SHOWN = 4000;    // characters of one message put in a row (the download has all)
const MAX_AHEAD = 10000;   // live lines held while waiting for a catch-up
const LEVELS = ['DEBUG', 'INFO', 'WARNING', 'ERROR', 'SUCCESS'];

export class LogView {
  /**
   * @param {object} el  {viewport, spacer, count, follow, jump, sistema, level}
   */
  constructor(el) {
    this.el = el;
    this.jobId = null;
    this.lines = [];        // {seq, ts, level, sistema, mensagem}
    this.dropped = 0;       // lines dropped from the front (MAX_LINES)
    this.ahead = new Map(); // seq → live line that came before its predecessors
    this.view = null;       // indices into lines matching the filter, or null = all
    this.fSistema = '';
    this.fLevel = '';
    this.sistemas = new Set();
    this.levels = new Set();
    this.follow = true;
    this.dirty = false;
    this.frame = 0;
    this.lastScrollTop = 0;
    this.rendered = { from: -1, to: -1, len: -1 };
    this.empty = h('div', { class: 'log-empty' }, 'Aguardando linhas de log…');

    el.viewport.addEventListener('scroll', () => this.onScroll(), { passive: true });
    el.follow.addEventListener('change', () => this.setFollow(el.follow.checked));
    el.jump.addEventListener('click', () => { this.setFollow(true); el.viewport.focus(); });
    el.sistema.addEventListener('change', () => this.setFilter(el.sistema.value, this.fLevel));
    el.level.addEventListener('change', () => this.setFilter(this.fSistema, el.level.value));
    el.viewport.addEventListener('keydown', (e) => {
      if (e.key === 'End') { e.preventDefault(); this.setFollow(true); }
      if (e.key === 'Home') { e.preventDefault(); this.setFollow(false); el.viewport.scrollTop = 0; }
    });
    new ResizeObserver(() => this.schedule()).observe(el.viewport);
  }

  /** Empties the view for another job; known = the job's own sistemas. */
  reset(jobId, known = []) {
    this.jobId = jobId;
    this.lines = [];
    this.dropped = 0;
    this.ahead.clear();
    this.view = null;
    this.sistemas = new Set();
    this.levels = new Set();
    this.fSistema = '';
    this.fLevel = '';
    this.el.level.replaceChildren(h('option', { value: '' }, 'Todos'));
    for (const l of LEVELS) this.addLevel(l);
    this.el.sistema.replaceChildren(h('option', { value: '' }, 'Todos'));
    for (const s of known) this.addSistema(s);
    this.rendered = { from: -1, to: -1, len: -1 };
    this.el.viewport.scrollTop = 0;
    this.setFollow(true);
    this.schedule();
  }

  /** seq of the last line held (0 when none): the `after` of the next catch-up. */
  get lastSeq() {
    return this.lines.length ? this.lines[this.lines.length - 1].seq : 0;
  }

  /**
   * Adds one line. live=true for a websocket event, which must be the very
   * next seq: an older one is a duplicate ('dup', ignored); a newer one means
   * lines are missing ('gap': it is held aside until its predecessors arrive,
   * and the caller catches up through REST). Lines from REST (live=false)
   * only need to be newer. Returns 'added', 'dup' or 'gap'.
   */
  add(line, live) {
    const seq = Number(line.seq);
    if (!Number.isSafeInteger(seq) || seq <= this.lastSeq) return 'dup';
    if (live && seq !== this.lastSeq + 1) {
      if (this.ahead.size < MAX_AHEAD) this.ahead.set(seq, line);
      return 'gap';
    }
    this.push(seq, line);
    // Lines held aside: drop those now old, append those now next.
    if (this.ahead.size) {
      for (const k of this.ahead.keys()) if (k <= this.lastSeq) this.ahead.delete(k);
      for (let n = this.lastSeq + 1; this.ahead.has(n); n++) {
        this.push(n, this.ahead.get(n));
        this.ahead.delete(n);
      }
    }
    this.schedule();
    return 'added';
  }

  push(seq, line) {
    const l = {
      seq,
      ts: typeof line.ts === 'string' ? line.ts : '',
      level: typeof line.level === 'string' ? line.level.toUpperCase() : 'INFO',
      sistema: typeof line.sistema === 'string' ? line.sistema : '',
      mensagem: line.mensagem === null || line.mensagem === undefined ? '' : String(line.mensagem),
    };
    this.lines.push(l);
    if (l.sistema && !this.sistemas.has(l.sistema)) this.addSistema(l.sistema);
    if (!this.levels.has(l.level)) this.addLevel(l.level);
    if (this.view && this.matches(l)) this.view.push(this.lines.length - 1);
    if (this.lines.length > MAX_LINES) this.trim();
  }

  trim() {
    const n = Math.floor(MAX_LINES / 10);
    this.lines.splice(0, n);
    this.dropped += n;
    if (this.view) this.rebuildView();
    this.rendered.len = -1;
  }

  addSistema(s) {
    this.sistemas.add(s);
    const opts = Array.from(this.el.sistema.options).slice(1);
    const before = opts.find((o) => o.value.localeCompare(s) > 0) || null;
    this.el.sistema.insertBefore(h('option', { value: s }, s), before);
  }

  /** Levels are any [A-Z]+ word of the pipeline: the usual ones are listed
   *  from the start, others as they appear. */
  addLevel(level) {
    this.levels.add(level);
    this.el.level.append(h('option', { value: level }, level));
  }

  matches(l) {
    return (!this.fSistema || l.sistema === this.fSistema) && (!this.fLevel || l.level === this.fLevel);
  }

  rebuildView() {
    if (!this.fSistema && !this.fLevel) { this.view = null; return; }
    const v = [];
    for (let i = 0; i < this.lines.length; i++) if (this.matches(this.lines[i])) v.push(i);
    this.view = v;
  }

  setFilter(sistema, level) {
    this.fSistema = sistema;
    this.fLevel = level;
    this.rebuildView();
    this.rendered.len = -1;
    this.schedule();
  }

  setFollow(on) {
    this.follow = on;
    this.el.follow.checked = on;
    this.el.jump.hidden = on;
    if (on) this.schedule();
  }

  onScroll() {
    const v = this.el.viewport;
    const atEnd = v.scrollTop + v.clientHeight >= v.scrollHeight - ROW_H;
    // Only a move up pauses following: growth of the content does not fire
    // scroll events, and our own scroll to the end lands at the end.
    if (!atEnd && this.follow && v.scrollTop < this.lastScrollTop) this.setFollow(false);
    else if (atEnd && !this.follow) this.setFollow(true);
    this.lastScrollTop = v.scrollTop;
    this.schedule();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = 0; this.render(); });
  }

  get length() { return this.view ? this.view.length : this.lines.length; }

  render() {
    const { viewport, spacer, count } = this.el;
    const n = this.length;
    spacer.style.height = `${n * ROW_H}px`;
    if (this.follow) {
      viewport.scrollTop = viewport.scrollHeight;
      this.lastScrollTop = viewport.scrollTop;
    }
    const top = viewport.scrollTop;
    const from = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const to = Math.min(n, Math.ceil((top + viewport.clientHeight) / ROW_H) + OVERSCAN);
    if (from !== this.rendered.from || to !== this.rendered.to || n !== this.rendered.len) {
      const rows = [];
      for (let i = from; i < to; i++) rows.push(this.row(this.view ? this.lines[this.view[i]] : this.lines[i], i));
      if (n === 0) rows.push(this.empty);
      spacer.replaceChildren(...rows);
      this.rendered = { from, to, len: n };
    }
    const total = this.lines.length + this.dropped;
    let text = `${nf.format(total)} ${total === 1 ? 'linha' : 'linhas'}`;
    if (this.view) text = `${nf.format(n)} de ${text}`;
    if (this.dropped) text += ` (as ${nf.format(this.dropped)} primeiras não são mais mostradas)`;
    if (count.textContent !== text) count.textContent = text;
    viewport.dataset.lastSeq = String(this.lastSeq);
    viewport.dataset.lines = String(total);
  }

  row(l, i) {
    const lvl = l.level.replace(/[^A-Z]/g, '');
    let msg = l.mensagem.replace(/[\r\n]+/g, ' ↵ ');
    if (msg.length > MAX_SHOWN) msg = `${msg.slice(0, MAX_SHOWN)} …`;
    const r = h('div', { class: `log-row lv-${lvl}`, dataset: { seq: l.seq } },
      h('span', { class: 'log-seq' }, l.seq),
      h('span', { class: 'log-ts' }, fmtTime(l.ts)),
      h('span', { class: 'log-lvl' }, l.level),
      l.sistema ? h('span', { class: 'log-sis' }, l.sistema) : null,
      h('span', { class: 'log-msg' }, msg));
    r.style.transform = `translateY(${i * ROW_H}px)`;
    return r;
  }

  /** The whole log as text (seq, time, level, sistema, message a line). */
  toText() {
    const out = [];
    for (const l of this.lines) out.push(`${l.seq}\t${l.ts}\t${l.level}\t${l.sistema}\t${l.mensagem}`);
    return out.join('\n') + (out.length ? '\n' : '');
  }
}
