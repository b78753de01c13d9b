// Browser scenarios for the dashboard page (www/), run in Debian's headless
// Chromium through playwright-core against the real stack behind the web
// server. Driven by tests/integration/test_browser.py, one scenario a run:
//
//   node dashboard.mjs SCENARIO
//
// Environment: ETL_BASE_URL (http://127.0.0.1:PORT), ETL_USERS (JSON:
// {"operator": {"username", "password"}, "viewer": {...}}), ETL_ARTIFACTS
// (screenshot folder), ETL_SHOT_TAG (screenshot name prefix), ETL_CHROMIUM
// (default /usr/bin/chromium).
//
// Protocol with the driver: a line "CTL {json}" on stdout asks it to act on
// the stack (stop/start etl-wsd, ...); it answers with one JSON line on stdin.
// The last stdout line is "RESULT {json}" (measurements); any failure exits
// non-zero with the reason on stderr.

import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { SISTEMA_STATUS } from '../../www/js/fmt.js'; // the badges' words

const BASE = process.env.ETL_BASE_URL;
const USERS = JSON.parse(process.env.ETL_USERS || '{}');
const ART = process.env.ETL_ARTIFACTS || path.resolve('artifacts');
const CHROMIUM = process.env.ETL_CHROMIUM || '/usr/bin/chromium';
const TAG = process.env.ETL_SHOT_TAG || ''; // screenshot name prefix (the web server, when not lighttpd)
const CSP = "default-src 'self'; connect-src 'self' ws: wss:";
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const log = (...a) => console.error('[browser]', ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- driver control channel ------------------------------------------------------

const stdinLines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function ctl(cmd, args = {}) {
  process.stdout.write(`CTL ${JSON.stringify({ cmd, ...args })}\n`);
  const { value, done } = await stdinLines.next();
  assert.ok(!done, `driver closed stdin during ${cmd}`);
  const r = JSON.parse(value);
  assert.ok(r.ok, `driver failed ${cmd}: ${r.error}`);
  return r;
}

// ---- browser ---------------------------------------------------------------------

async function launch() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etl-chromium-'));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM, headless: true, args: FLAGS, acceptDownloads: true,
    viewport: { width: 1366, height: 900 }, locale: 'pt-BR', timezoneId: 'America/Sao_Paulo',
  });
  ctx.setDefaultTimeout(20000);
  const problems = [];
  await ctx.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/WebSocket connection|Failed to load resource/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on('dialog', (d) => { problems.push(`dialog: ${d.message()}`); d.dismiss(); });
  // A trace of the page's sockets and failed requests, printed when a scenario fails.
  const trace = [];
  const t0 = Date.now();
  const note = (m) => { trace.push(`${((Date.now() - t0) / 1000).toFixed(2)}s ${m}`); if (trace.length > 200) trace.shift(); };
  page.on('websocket', (ws) => {
    note('ws open requested');
    ws.on('socketerror', (e) => note(`ws error ${e}`));
    ws.on('close', () => note('ws closed'));
    ws.on('framereceived', (f) => { if (!String(f.payload).includes('"log"')) note(`ws frame ${String(f.payload).slice(0, 120)}`); });
  });
  page.on('response', (r) => { if (r.status() >= 400) note(`HTTP ${r.status()} ${r.request().method()} ${r.url().replace(BASE, '')}`); });
  page.on('requestfailed', (r) => note(`request failed ${r.url().replace(BASE, '')} ${r.failure() && r.failure().errorText}`));
  const close = async () => {
    await ctx.close();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { ctx, page, problems, trace, close };
}

async function checkClean(b) {
  const csp = await b.page.evaluate(() => window.__csp);
  assert.deepEqual(csp, [], `CSP violations: ${csp.join(', ')}`);
  const errs = b.problems.filter((p) => !p.startsWith('note:'));
  assert.deepEqual(errs, [], errs.join('\n'));
}

async function shot(page, name, opt = {}) {
  fs.mkdirSync(ART, { recursive: true });
  const file = path.join(ART, `browser-${TAG ? `${TAG}-` : ''}${name}.png`);
  await page.screenshot({ path: file, fullPage: true, ...opt });
  return file;
}

/** Opens the page; notes whether the server sent the strict CSP (every
 *  violation is recorded by the init script and fails the scenario). */
async function open(b) {
  const resp = await b.page.goto(`${BASE}/`);
  const sent = resp.headers()['content-security-policy'];
  if (sent === undefined) b.problems.push('note: the web server sent no Content-Security-Policy header');
  else if (sent !== CSP) b.problems.push(`note: Content-Security-Policy sent: ${sent}`);
}

async function login(page, who) {
  const u = USERS[who];
  await open(current);
  await page.getByLabel('Usuário').fill(u.username);
  await page.getByLabel('Senha').fill(u.password);
  await page.getByRole('button', { name: 'Entrar' }).click();
  await page.locator('#dash-view').waitFor({ state: 'visible' });
  await page.locator('.sist').first().waitFor();
  return u;
}

// ---- REST (with the page's own token) --------------------------------------------

async function token(page) {
  return page.evaluate(() => JSON.parse(sessionStorage.getItem('etl.session')).token);
}

async function rest(page, method, p, body) {
  const r = await fetch(`${BASE}${p}`, {
    method,
    headers: { Authorization: `Bearer ${await token(page)}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const js = await r.json().catch(() => null);
  return { status: r.status, body: js };
}

async function restLog(page, jobId) {
  const out = [];
  for (let after = 0; ;) {
    const r = await rest(page, 'GET', `/api/jobs/${jobId}/logs?after=${after}&limit=500`);
    assert.equal(r.status, 200);
    if (!r.body.lines.length) return out;
    out.push(...r.body.lines);
    after = r.body.lines[r.body.lines.length - 1].seq;
  }
}

// ---- page helpers ----------------------------------------------------------------

async function executeFromPage(page, sistemas, params) {
  for (const s of sistemas) await page.locator(`#sel-${s}`).check();
  if (params) {
    const d = page.locator('.exec-params');
    if (!(await d.evaluate((el) => el.open))) await d.locator('summary').click();
    await page.getByLabel('Parâmetros do pipeline (objeto JSON)').fill(JSON.stringify(params));
  }
  await page.getByRole('button', { name: /^Executar selecionados/ }).click();
  await page.locator('#detail').waitFor({ state: 'visible' });
  await page.waitForFunction(() => /^Job #\d+$/.test(document.getElementById('detail-title').textContent));
  return Number((await page.locator('#detail-title').textContent()).replace(/\D/g, ''));
}

const detailStatus = (page) => page.locator('#detail-status').textContent();
const logLines = (page) => page.locator('#log').getAttribute('data-lines').then((v) => Number(v || 0));

async function waitDetailStatus(page, label, timeout = 60000) {
  await page.waitForFunction((l) => document.getElementById('detail-status').textContent === l, label, { timeout });
}

/** Waits until the page holds as many log lines as REST has for a finished job. */
async function waitLogSettled(page, jobId) {
  const all = await restLog(page, jobId);
  try {
    await page.waitForFunction((n) => Number(document.getElementById('log').dataset.lines) >= n, all.length);
  } catch (e) {
    throw new Error(`the page holds ${await logLines(page)} log lines of job ${jobId}, REST has ${all.length}: lines lost`);
  }
  return all;
}

/** The log as the page holds it, through its "Baixar log" button. */
async function downloadedLog(page) {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Baixar log' }).click()]);
  const text = fs.readFileSync(await dl.path(), 'utf8');
  return text.split('\n').filter(Boolean).map((l) => {
    const [seq, ts, level, sistema, ...m] = l.split('\t');
    return { seq: Number(seq), ts, level, sistema, mensagem: m.join('\t') };
  });
}

/** Asserts the page's log is exactly REST's: same seqs in order, once each, same text. */
async function assertSameLog(page, jobId) {
  const want = await waitLogSettled(page, jobId);
  const got = await downloadedLog(page);
  const seqs = got.map((l) => l.seq);
  const dupes = seqs.filter((s, i) => i && s <= seqs[i - 1]);
  assert.deepEqual(dupes, [], `repeated or out-of-order seqs: ${dupes.slice(0, 10)}`);
  const missing = want.filter((l) => !seqs.includes(l.seq)).map((l) => l.seq);
  assert.deepEqual(missing, [], `lines missing from the page: ${missing.slice(0, 10)}`);
  assert.equal(got.length, want.length);
  for (let i = 0; i < want.length; i++) {
    assert.equal(got[i].seq, want[i].seq);
    assert.equal(got[i].mensagem, want[i].mensagem.replace(/\r?\n/g, '\n'));
  }
  return want.length;
}

/** WCAG contrast of every visible text on the page (enabled controls and
 *  text; 4.5:1, or 3:1 for large text). Returns the failures. */
async function contrastFailures(page) {
  return page.evaluate(() => {
    const rgba = (c) => {
      const m = c.match(/rgba?\(([^)]+)\)/);
      if (!m) return null;
      const p = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
      return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
    };
    const lum = ({ r, g, b }) => {
      const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const over = (top, under) => ({
      r: top.r * top.a + under.r * (1 - top.a), g: top.g * top.a + under.g * (1 - top.a),
      b: top.b * top.a + under.b * (1 - top.a), a: 1,
    });
    const background = (el) => {
      const stack = [];
      for (let e = el; e; e = e.parentElement) {
        const c = rgba(getComputedStyle(e).backgroundColor);
        if (c && c.a > 0) { stack.push(c); if (c.a >= 1) break; }
      }
      let bg = { r: 255, g: 255, b: 255, a: 1 };
      for (let i = stack.length - 1; i >= 0; i--) bg = over(stack[i], bg);
      return bg;
    };
    const fails = [];
    const seen = new Set();
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const el = n.parentElement;
      if (!n.textContent.trim() || seen.has(el)) continue;
      seen.add(el);
      const r = el.getBoundingClientRect();
      if (!r.width || !r.height || el.closest('[hidden], :disabled, .sr-only, option')) continue;
      const st = getComputedStyle(el);
      if (st.visibility === 'hidden' || Number(st.opacity) === 0) continue;
      let opacity = 1;
      for (let e = el; e; e = e.parentElement) opacity *= Number(getComputedStyle(e).opacity);
      if (opacity < 1) continue; // dimmed on purpose (inactive sistema): not text to read
      const bg = background(el);
      const fg = over(rgba(st.color), bg);
      const [l1, l2] = [lum(fg), lum(bg)].sort((a, b) => b - a);
      const ratio = (l1 + 0.05) / (l2 + 0.05);
      const size = parseFloat(st.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(st.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) fails.push(`${ratio.toFixed(2)} "${n.textContent.trim().slice(0, 30)}" (${el.className || el.tagName})`);
    }
    return fails;
  });
}

// ---- scenarios -------------------------------------------------------------------

const scenarios = {};
let current = null; // the browser of this run (for login())

/** Operator: log in, execute, watch the log stream live and the progress bar move. */
scenarios.execute = async (b) => {
  const { page } = b;
  await open(b);
  await page.locator('#login-form').waitFor();
  await shot(page, 'login');
  await login(page, 'operator');
  assert.equal(await page.locator('#who-role').textContent(), 'operador');
  await page.locator('#live-chip[data-state="live"]').waitFor();
  const jobId = await executeFromPage(page, ['amplis', 'maps'], { format: 'json', lines: 40, sleep: 8 });

  // Sample while the job runs: lines must arrive while it is still running,
  // and the progress bar of a sistema must take several values in 1..99.
  const seenProgress = new Set();
  const seenLines = [];
  const t0 = Date.now();
  let midShot = false;
  while (Date.now() - t0 < 60000) {
    const st = await detailStatus(page);
    const p = Number(await page.locator('.sist[data-id="amplis"] [role=progressbar]').getAttribute('aria-valuenow'));
    const n = await logLines(page);
    if (st === 'Em execução') {
      if (!seenLines.length) {
        // The pool panel shows the job in a slot with its elapsed time.
        // (the pool panel loads on its own request: wait for it, do not race it)
        await page.locator('#pool-mode', { hasText: 'Modo pool · 2 workers' }).waitFor({ timeout: 10000 });
        const slot = page.locator('#pool-slots .slot.busy', { hasText: `Job #${jobId}` });
        await slot.waitFor({ timeout: 5000 });
        assert.match(await slot.locator('.slot-time').textContent(), /^\d\d:\d\d:\d\d$/);
        assert.equal(await page.locator('#pool-slots .slot').count(), 2);
      }
      seenLines.push(n);
      if (p > 0 && p < 100) seenProgress.add(p);
      if (!midShot && n > 20) { midShot = true; await shot(page, 'execute-running'); }
    }
    if (st === 'Concluído') break;
    await sleep(100);
  }
  assert.equal(await detailStatus(page), 'Concluído', 'job did not complete');
  const growing = new Set(seenLines.filter((n) => n > 0)).size;
  assert.ok(growing >= 3, `log did not stream live while running (counts seen: ${[...new Set(seenLines)]})`);
  assert.ok(seenProgress.size >= 3, `progress bar did not move (values: ${[...seenProgress]})`);
  // Final state: both sistemas SUCCESS with a full bar, row in the jobs table.
  for (const s of ['amplis', 'maps']) {
    await page.waitForFunction((id) => document.querySelector(`.sist[data-id="${id}"] .badge`).textContent === 'Sucesso', s);
    assert.equal(await page.locator(`.sist[data-id="${s}"] [role=progressbar]`).getAttribute('aria-valuenow'), '100');
  }
  await page.waitForFunction((id) => {
    const tr = document.querySelector(`#jobs-body tr[data-id="${id}"]`);
    return tr && tr.querySelector('.badge').textContent === 'Concluído';
  }, jobId);
  const n = await assertSameLog(page, jobId);
  // Level filter shows only SUCCESS lines (one per sistema).
  await page.getByLabel('Nível').selectOption('SUCCESS');
  await page.waitForFunction(() => /^2 de /.test(document.getElementById('log-count').textContent));
  await page.getByLabel('Nível').selectOption('');
  const lowContrast = await contrastFailures(page);
  assert.deepEqual(lowContrast, [], `text below WCAG AA contrast: ${lowContrast.join('; ')}`);
  await shot(page, 'execute-desktop');
  await page.setViewportSize({ width: 390, height: 844 });
  await sleep(300);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `page scrolls sideways at phone width (${overflow}px)`);
  await shot(page, 'execute-phone');
  await checkClean(b);
  return { job: jobId, lines: n, progress_values: [...seenProgress].sort((x, y) => x - y), samples_running: seenLines.length };
};

/** Operator cancels a pending job (at once) and a running job (asked to stop). */
scenarios.cancel = async (b) => {
  const { page } = b;
  await login(page, 'operator');
  const running = await executeFromPage(page, ['sac'], { lines: 200, sleep: 120 });
  await waitDetailStatus(page, 'Em execução');
  // A second job on the same sistema waits behind the first (sistema exclusive).
  const pendingJob = await executeFromPage(page, ['sac'], { lines: 3 });
  const row = (id) => page.locator(`#jobs-body tr[data-id="${id}"]`);
  await row(pendingJob).locator('.badge', { hasText: 'Pendente' }).waitFor();
  await row(pendingJob).getByRole('button', { name: `Cancelar job ${pendingJob}` }).click();
  await row(pendingJob).locator('.badge', { hasText: 'Cancelado' }).waitFor({ timeout: 10000 });
  assert.equal(await row(pendingJob).getByRole('button', { name: /Cancelar/ }).count(), 0);

  await row(running).getByRole('button', { name: 'Ver log' }).click();
  await page.waitForFunction((id) => document.getElementById('detail-title').textContent === `Job #${id}`, running);
  await waitDetailStatus(page, 'Em execução');
  await page.getByRole('button', { name: 'Cancelar job', exact: true }).click();
  await waitDetailStatus(page, 'Cancelado', 60000);
  await row(running).locator('.badge', { hasText: 'Cancelado' }).waitFor();
  assert.ok(await page.locator('#detail-cancel').isHidden(), 'cancel button still shown on a finished job');
  const j = await rest(page, 'GET', `/api/jobs/${running}`);
  assert.equal(j.body.status, 'cancelled');
  await shot(page, 'cancel');
  // The status filter shows only cancelled jobs.
  await page.getByLabel('Status', { exact: true }).selectOption('cancelled');
  await page.waitForFunction(() => [...document.querySelectorAll('#jobs-body .badge')].every((x) => x.textContent === 'Cancelado')
    && document.querySelectorAll('#jobs-body tr').length === 2);
  await checkClean(b);
  return { cancelled: [pendingJob, running] };
};

/** etl-wsd restarted mid-job: banner, REST polling meanwhile, reconnection,
 *  and the log goes on with no line lost or repeated. To make sure the page
 *  meets a hole at reconnect (and not only lines polled just before), its
 *  log requests are held back from just before etl-wsd comes back until
 *  live lines have arrived over the new socket. */
scenarios.wsd_restart = async (b) => {
  const { page } = b;
  let blockLogs = false;
  let blocked = 0;
  await page.route(/\/api\/jobs\/\d+\/logs/, (route) => {
    if (!blockLogs) return route.continue();
    blocked += 1;
    return route.abort('connectionrefused');
  });
  await login(page, 'operator');
  await page.locator('#live-chip[data-state="live"]').waitFor();
  // Long enough to outlast the page's reconnect: its backoff may reach
  // 4-8 s, or 8-15 s, when lighttpd still refuses /ws for a moment after
  // etl-wsd is back (a CI run saw the job end first, with 20 s).
  const jobId = await executeFromPage(page, ['amplis'], { format: 'json', lines: 1500, sleep: 45 });
  await page.waitForFunction(() => Number(document.getElementById('log').dataset.lines) >= 30);
  const before = await logLines(page);
  await ctl('stop_wsd');
  await page.locator('#conn-banner').waitFor({ state: 'visible', timeout: 15000 });
  const banner = await page.locator('#conn-banner-text').textContent();
  assert.match(banner, /Conexão em tempo real perdida/);
  await shot(page, 'wsd-down');
  // While the socket is down the page keeps up through REST.
  await page.waitForFunction((n) => Number(document.getElementById('log').dataset.lines) > n + 10, before, { timeout: 15000 });
  const during = await logLines(page);
  blockLogs = true;
  await sleep(1000); // lines the page has not seen pile up
  await ctl('start_wsd');
  await page.locator('#conn-banner').waitFor({ state: 'hidden', timeout: 30000 });
  await page.locator('#live-chip[data-state="live"]').waitFor();
  await sleep(1000); // live lines arrive past the hole
  const held = await logLines(page);
  blockLogs = false;
  await page.waitForFunction((n) => Number(document.getElementById('log').dataset.lines) > n, held, { timeout: 15000 });
  const after = await logLines(page);
  await waitDetailStatus(page, 'Concluído', 90000);
  const n = await assertSameLog(page, jobId);
  assert.ok(n > after, 'the job ended before the relay came back: nothing was streamed after the restart');
  assert.ok(blocked > 0, 'no log request was held back: the hole was not exercised');
  await shot(page, 'wsd-after');
  await checkClean(b);
  return { job: jobId, lines: n, at_stop: before, while_down: during, held_back_requests: blocked, at_reconnect: held, after_catch_up: after };
};

/** A log line and a sistema name containing markup are shown as text. */
scenarios.xss = async (b) => {
  const { page } = b;
  const evil = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2"><b>negrito</b>';
  await login(page, 'operator');
  const jobId = await executeFromPage(page, ['amplis'], { lines: 2, stderr: evil });
  await waitDetailStatus(page, 'Concluído', 60000).catch(() => waitDetailStatus(page, 'Erro', 1000));
  await waitLogSettled(page, jobId);
  const row = page.locator('.log-row .log-msg', { hasText: 'negrito' });
  await row.waitFor();
  assert.equal(await row.textContent(), evil);
  assert.equal(await page.locator('#log script, #log img, #log b').count(), 0);
  const nome = await page.locator('.sist[data-id="xss"] .sist-name').textContent();
  assert.ok(nome.startsWith('<i>Itálico</i>'), `sistema name not shown as text: ${nome}`);
  assert.equal(await page.locator('.sist i, .sist script').count(), 0);
  await sleep(300);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  await shot(page, 'xss');
  await checkClean(b);
  return { job: jobId };
};

/** An event that would move a job back (the API's `pending` after a
 *  worker's `running` or `completed`: events from different processes need
 *  not arrive in order) changes neither the job's row nor its detail, not
 *  even for a moment. A later event on the same channel (a sistema's
 *  message) shows the page has handled it. */
scenarios.stale = async (b) => {
  const { page } = b;
  await login(page, 'operator');
  const jobId = await executeFromPage(page, ['amplis'], { lines: 1 });
  await waitDetailStatus(page, 'Concluído', 60000);
  await page.locator(`#jobs-body tr[data-id="${jobId}"] .badge`, { hasText: 'Concluído' }).waitFor();
  await page.evaluate((id) => {
    window.__seen = new Set();
    const note = () => {
      const row = document.querySelector(`#jobs-body tr[data-id="${id}"] .badge`);
      window.__seen.add(`row ${row ? row.textContent : '(none)'}`);
      window.__seen.add(`detail ${document.getElementById('detail-status').textContent}`);
    };
    new MutationObserver(note).observe(document.body, { subtree: true, childList: true, characterData: true });
  }, jobId);
  await ctl('publish', { event: { type: 'job_status', payload: { job_id: jobId, status: 'pending', worker_slot: null } } });
  await ctl('publish', { event: { type: 'status', payload: { sistema_id: 'maps', status: 'IDLE', progresso: 0, mensagem: 'after-the-stale-event' } } });
  await page.locator('.sist[data-id="maps"] .sist-msg', { hasText: 'after-the-stale-event' }).waitFor();
  await sleep(500); // and the reload the job event scheduled
  const seen = await page.evaluate(() => [...window.__seen]);
  assert.deepEqual(seen.filter((x) => !x.endsWith('Concluído')), [], `the job moved back: ${seen}`);
  assert.equal(await page.locator('#detail-status').textContent(), 'Concluído');
  // A sistema can go back to PENDING, but not while it runs: a PENDING
  // after a RUNNING is late, and the card asks REST instead of showing it.
  const truth = SISTEMA_STATUS[(await rest(page, 'GET', '/api/sistemas/xss')).body.status];
  assert.notEqual(truth, 'Pendente');
  await ctl('publish', { event: { type: 'status', payload: { sistema_id: 'xss', status: 'RUNNING', progresso: 10, mensagem: null } } });
  await page.locator('#st-xss', { hasText: 'Executando' }).waitFor();
  await page.evaluate(() => {
    const el = document.getElementById('st-xss');
    window.__card = new Set();
    new MutationObserver(() => window.__card.add(el.textContent)).observe(el, { subtree: true, childList: true, characterData: true });
  });
  await ctl('publish', { event: { type: 'status', payload: { sistema_id: 'xss', status: 'PENDING', progresso: 0, mensagem: null } } });
  await page.waitForFunction((t) => document.getElementById('st-xss').textContent === t, truth);
  const card = await page.evaluate(() => [...window.__card]);
  assert.ok(!card.includes('Pendente'), `the card showed a late PENDING: ${card}`);
  await checkClean(b);
  return { job: jobId, card };
};

/** A viewer sees everything but no execute or cancel control. */
scenarios.viewer = async (b) => {
  const { page } = b;
  await login(page, 'viewer');
  assert.equal(await page.locator('#who-role').textContent(), 'leitura');
  const { job } = await ctl('enqueue', { sistemas: ['maps'], params: { lines: 100, sleep: 60 } });
  await page.locator(`#jobs-body tr[data-id="${job}"]`).waitFor();
  assert.equal(await page.getByRole('button', { name: /Executar/ }).count(), 0);
  assert.ok(await page.locator('#exec-form').isHidden());
  assert.equal(await page.locator('.sist input[type=checkbox]').count(), 0);
  assert.equal(await page.getByRole('button', { name: /Cancelar/ }).count(), 0);
  await page.locator(`#jobs-body tr[data-id="${job}"]`).getByRole('button', { name: 'Ver log' }).click();
  await page.waitForFunction(() => Number(document.getElementById('log').dataset.lines) > 0);
  assert.ok(await page.locator('#detail-cancel').isHidden());
  assert.equal(await page.getByRole('button', { name: /Cancelar/ }).count(), 0);
  // Paging: 22 jobs in pages of 20.
  await ctl('enqueue', { sistemas: ['sac'], params: { lines: 1 }, count: 21 });
  await page.locator('#jobs-range', { hasText: '1–20 de 22' }).waitFor();
  assert.equal(await page.locator('#jobs-body tr').count(), 20);
  assert.ok(await page.getByRole('button', { name: '‹ Anterior' }).isDisabled());
  await page.getByRole('button', { name: 'Próxima ›' }).click();
  await page.locator('#jobs-range', { hasText: '21–22 de 22' }).waitFor();
  assert.equal(await page.locator('#jobs-body tr').count(), 2);
  assert.ok(await page.getByRole('button', { name: 'Próxima ›' }).isDisabled());
  await page.getByRole('button', { name: '‹ Anterior' }).click();
  await page.locator('#jobs-range', { hasText: '1–20 de 22' }).waitFor();
  assert.equal(await page.locator('#jobs-body tr td[data-label="Iniciado por"]').first().textContent(), USERS.operator.username);
  // The API agrees: a viewer's execute is refused.
  assert.equal((await rest(page, 'POST', '/api/execute', { sistemas: ['maps'] })).status, 403);
  await shot(page, 'viewer');
  await page.setViewportSize({ width: 390, height: 844 });
  await sleep(300);
  await shot(page, 'viewer-phone');
  await checkClean(b);
  return { job };
};

/** Session: a token the API refuses brings the login form back; logout too;
 *  keyboard-only login works. */
scenarios.session = async (b) => {
  const { page } = b;
  const u = USERS.operator;
  await open(b);
  // Keyboard only: the user field has focus, Tab to the password, Enter submits.
  await page.locator('#login-user').waitFor({ state: 'visible' });
  assert.equal(await page.evaluate(() => document.activeElement.id), 'login-user');
  await page.keyboard.type('ninguem');
  await page.keyboard.press('Tab');
  await page.keyboard.type('senha-errada');
  await page.keyboard.press('Enter');
  await page.locator('#login-error', { hasText: 'Usuário ou senha inválidos.' }).waitFor();
  await page.locator('#login-user').fill(u.username);
  await page.locator('#login-pass').fill(u.password);
  await page.keyboard.press('Enter');
  await page.locator('#dash-view').waitFor({ state: 'visible' });
  // Reload keeps the session (sessionStorage).
  await page.reload();
  await page.locator('#dash-view').waitFor({ state: 'visible' });
  // A token the server refuses (expired, forged): the next request gets 401
  // and the page goes back to the login form.
  await page.evaluate(() => {
    const s = JSON.parse(sessionStorage.getItem('etl.session'));
    s.token = `${s.token.slice(0, -4)}AAAA`;
    sessionStorage.setItem('etl.session', JSON.stringify(s));
  });
  await page.reload();
  await page.locator('#login-view').waitFor({ state: 'visible' });
  await page.locator('#login-error', { hasText: 'Sua sessão expirou' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('etl.session')), null);
  assert.equal(await page.locator('#login-user').inputValue(), u.username);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'login-pass');
  await shot(page, 'session-expired');
  // Log in again, then out.
  await page.locator('#login-user').fill(u.username);
  await page.locator('#login-pass').fill(u.password);
  await page.getByRole('button', { name: 'Entrar' }).click();
  await page.locator('#dash-view').waitFor({ state: 'visible' });
  await page.getByRole('button', { name: 'Sair' }).click();
  await page.locator('#login-view').waitFor({ state: 'visible' });
  assert.equal(await page.evaluate(() => sessionStorage.getItem('etl.session')), null);
  await checkClean(b);
  return {};
};

/** Redis disabled: no events exist; the page polls REST and still shows the
 *  job's log and its end, without a lost-connection alarm. */
scenarios.polling = async (b) => {
  const { page } = b;
  await login(page, 'operator');
  await page.locator('#live-chip[data-state="poll"]').waitFor({ timeout: 20000 });
  const jobId = await executeFromPage(page, ['maps'], { format: 'json', lines: 20, sleep: 6 });
  assert.equal(await page.locator('#pool-mode').textContent(), 'Modo único');
  await page.locator('#pool-slots .slot.busy', { hasText: `Job #${jobId}` }).waitFor({ timeout: 5000 });
  const counts = new Set();
  const t0 = Date.now();
  while (Date.now() - t0 < 30000 && (await detailStatus(page)) !== 'Concluído') {
    counts.add(await logLines(page));
    await sleep(200);
  }
  await waitDetailStatus(page, 'Concluído', 30000);
  assert.ok(counts.size >= 2, `log did not update while the job ran (${[...counts]})`);
  const n = await assertSameLog(page, jobId);
  await page.locator('.sist[data-id="maps"] .badge', { hasText: 'Sucesso' }).waitFor();
  assert.ok(await page.locator('#conn-banner').isHidden(), 'banner shown although Redis is disabled on purpose');
  await shot(page, 'polling');
  await checkClean(b);
  return { job: jobId, lines: n };
};

/** 100,000 log lines: the page holds them all, renders a few dozen rows, and
 *  stays responsive (frames measured while scrolling and filtering). */
scenarios.bigLog = async (b) => {
  const { page } = b;
  await login(page, 'operator');
  const N = 100000;
  // Frame gaps while the lines stream in: a frozen page shows long gaps.
  await page.evaluate(() => {
    window.__gaps = [];
    let last = performance.now();
    const loop = (t) => { window.__gaps.push(t - last); last = t; if (!window.__stopGaps) requestAnimationFrame(loop); };
    requestAnimationFrame(loop);
  });
  const t0 = Date.now();
  const jobId = await executeFromPage(page, ['amplis'], { format: 'plain', lines: N });
  // Auto-scroll: it follows the end, pauses when the user scrolls up (the view
  // stays put while lines keep coming), resumes from the "new lines" button.
  await page.waitForFunction(() => Number(document.getElementById('log').dataset.lines) >= 3000, null, { timeout: 60000 });
  const atEnd = () => page.locator('#log').evaluate((v) => v.scrollTop + v.clientHeight >= v.scrollHeight - 25);
  assert.ok(await atEnd(), 'log does not follow the end while lines arrive');
  await page.locator('#log').hover();
  await page.mouse.wheel(0, -2000);
  await page.waitForFunction(() => !document.getElementById('log-follow').checked);
  await page.locator('#log-jump').waitFor({ state: 'visible' });
  const paused = await page.locator('#log').evaluate((v) => v.scrollTop);
  const linesAtPause = await logLines(page);
  await page.waitForFunction((n) => Number(document.getElementById('log').dataset.lines) >= n + 3000, linesAtPause, { timeout: 60000 });
  const still = await page.locator('#log').evaluate((v) => v.scrollTop);
  assert.ok(Math.abs(still - paused) <= 20, `the view moved while paused (${paused} -> ${still})`);
  assert.ok(!(await atEnd()), 'paused view is at the end');
  await page.getByRole('button', { name: '↓ Novas linhas' }).click();
  await page.waitForFunction(() => document.getElementById('log-follow').checked);
  await sleep(200);
  assert.ok(await atEnd(), 'following again, but not at the end');
  await page.waitForFunction((n) => Number(document.getElementById('log').dataset.lines) >= n, N, { timeout: 180000, polling: 500 });
  const loadMs = Date.now() - t0;
  const streaming = await page.evaluate(() => {
    window.__stopGaps = true;
    const g = window.__gaps.slice(1).sort((x, y) => x - y);
    return { frames: g.length, p99FrameMs: Math.round(g[Math.floor(g.length * 0.99)] || 0), worstFrameMs: Math.round(g[g.length - 1] || 0) };
  });
  await waitDetailStatus(page, 'Concluído', 60000);
  const total = (await restLog(page, jobId)).length;
  await page.waitForFunction((n) => Number(document.getElementById('log').dataset.lines) >= n, total);
  const m = await page.evaluate(async () => {
    const v = document.getElementById('log');
    const frame = () => new Promise((r) => requestAnimationFrame(() => r(performance.now())));
    const gaps = [];
    let last = await frame();
    for (let i = 0; i < 60; i++) {
      v.scrollTop = Math.floor((i * 7919 % 60) / 60 * v.scrollHeight);
      const t = await frame();
      gaps.push(t - last);
      last = t;
    }
    const f0 = performance.now();
    const sel = document.getElementById('log-level');
    sel.value = 'SUCCESS';
    sel.dispatchEvent(new Event('change'));
    await frame();
    const filterMs = performance.now() - f0;
    sel.value = '';
    sel.dispatchEvent(new Event('change'));
    await frame();
    return {
      rows: document.querySelectorAll('#log .log-row').length,
      maxFrameMs: Math.round(Math.max(...gaps)),
      avgFrameMs: Math.round(gaps.reduce((a, x) => a + x, 0) / gaps.length),
      filterMs: Math.round(filterMs),
    };
  });
  assert.ok(m.rows < 300, `log renders ${m.rows} DOM rows for ${total} lines`);
  assert.ok(m.maxFrameMs < 1000, `a frame took ${m.maxFrameMs} ms while scrolling`);
  assert.ok(streaming.worstFrameMs < 2000, `the page froze ${streaming.worstFrameMs} ms while lines streamed in`);
  const n = await assertSameLog(page, jobId);
  await shot(page, 'biglog');
  await checkClean(b);
  return { job: jobId, lines: n, load_ms: loadMs, streaming, ...m };
};

/** A token that expires while the page is open: etl-wsd closes the socket
 *  with 4001 and the page goes back to the login form at once (the token is
 *  minted by the driver with a 15 s lifetime; the page's own expiry timer is
 *  pushed an hour away, so only the server can end this session). */
scenarios.expiry = async (b) => {
  const { page } = b;
  await login(page, 'operator');
  const { token: short, exp } = await ctl('short_token', { ttl: 15 });
  await page.evaluate((t) => {
    const s = JSON.parse(sessionStorage.getItem('etl.session'));
    s.token = t;
    s.expiresAt = Date.now() + 3600 * 1000;
    sessionStorage.setItem('etl.session', JSON.stringify(s));
  }, short);
  await page.reload();
  await page.locator('#live-chip[data-state="live"]').waitFor();
  await page.locator('#login-view').waitFor({ state: 'visible', timeout: 30000 });
  const late = Date.now() / 1000 - exp;
  await page.locator('#login-error', { hasText: 'Sua sessão expirou' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('etl.session')), null);
  assert.ok(late < 10, `login form came back ${late.toFixed(1)} s after expiry`);
  await checkClean(b);
  return { seconds_after_expiry: Number(late.toFixed(2)) };
};

/** Served with the strict CSP (by the test's front, which proxies /api):
 *  the page works, its styles apply, nothing is blocked. */
scenarios.csp = async (b) => {
  const { page } = b;
  const resp = await page.goto(`${BASE}/`);
  assert.equal(resp.headers()['content-security-policy'], CSP);
  await login(page, 'operator');
  const bg = await page.locator('.topbar').evaluate((el) => getComputedStyle(el).backgroundColor);
  assert.equal(bg, 'rgb(23, 32, 44)', 'stylesheet not applied');
  // Keyboard only: on a fresh load the first Tab reaches the skip link;
  // Space ticks a sistema; Tab walks on to the execute button; Enter runs it.
  await page.reload();
  await page.locator('.sist').first().waitFor();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Pular para o conteúdo');
  await page.locator('#sel-amplis').focus();
  await page.keyboard.press('Space');
  assert.ok(await page.locator('#sel-amplis').isChecked());
  for (let i = 0; i < 12 && (await page.evaluate(() => document.activeElement.id)) !== 'exec-btn'; i++) await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'exec-btn', 'execute button not reachable with Tab');
  await page.keyboard.press('Enter');
  await page.locator('#detail').waitFor({ state: 'visible' });
  await page.waitForFunction(() => /^Job #\d+$/.test(document.getElementById('detail-title').textContent));
  const jobId = Number((await page.locator('#detail-title').textContent()).replace(/\D/g, ''));
  await waitDetailStatus(page, 'Concluído', 60000);
  await page.locator('.sist[data-id="amplis"] .badge', { hasText: 'Sucesso' }).waitFor();
  // The width is set through the CSSOM (allowed by the policy); it animates.
  const ratio = () => page.locator('.sist[data-id="amplis"] .progress-fill')
    .evaluate((el) => el.getBoundingClientRect().width / el.parentElement.getBoundingClientRect().width);
  const t0 = Date.now();
  while ((await ratio()) < 0.99 && Date.now() - t0 < 5000) await sleep(100);
  const w = await ratio();
  assert.ok(w > 0.99, `progress bar width not applied under CSP (${w})`);
  await assertSameLog(page, jobId);
  await checkClean(b);
  return { job: jobId };
};

// ---- main ------------------------------------------------------------------------

const name = process.argv[2];
if (!scenarios[name]) {
  console.error(`unknown scenario ${name}; known: ${Object.keys(scenarios).join(', ')}`);
  process.exit(2);
}
const b = await launch();
current = b;
let code = 0;
try {
  const r = await scenarios[name](b);
  process.stdout.write(`RESULT ${JSON.stringify({ scenario: name, ...r, notes: b.problems.filter((p) => p.startsWith('note:')) })}\n`);
} catch (e) {
  code = 1;
  console.error(`scenario ${name} failed: ${e && e.stack ? e.stack : e}`);
  await shot(b.page, `${name}-failure`).catch(() => {});
  if (b.problems.length) console.error(b.problems.join('\n'));
  console.error(`trace:\n${b.trace.join('\n')}`);
} finally {
  await b.close().catch(() => {});
}
process.exit(code);
