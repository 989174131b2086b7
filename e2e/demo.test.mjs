// End-to-end tests of web-demo/index.html in headless Chromium against every example server.
// Run with `npm test` (node's built-in test runner); see README.md.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import {
  FRAMEWORKS, REPO_DIR, RESULTS_DIR, SETTINGS, launchBrowser, readCard, sleep, startServers, stopServers, waitUntil,
} from './harness.mjs';

const PAGE_FILE = join(REPO_DIR, 'web-demo', 'index.html');
// The list of frameworks the page loads beside it on disk (the servers write it into the page).
const FRAMEWORKS_FILE = join(REPO_DIR, 'web-demo', 'frameworks.js');
const FRAMEWORKS_TAG = '<script src="frameworks.js"></script>';
// The page as the axum server serves it. E2E_PAGE=disk instead serves web-demo/index.html from a
// small server of our own on 127.0.0.1 (the cards still point at the example servers), for working on
// the page without rebuilding the binaries it is compiled into.
const PAGE_FROM_DISK = process.env.E2E_PAGE === 'disk';
let pageUrl = `http://127.0.0.1:${FRAMEWORKS[0].port}/`;
let diskServer;

const TEST_TIMEOUT_MS = 30_000;   // per test; every wait inside is shorter
const OPEN_TIMEOUT_MS = 10_000;   // page load → every card open
// A restarted server is up again; the browser retries RETRY_MS after its last failed attempt, so it
// should be back within RETRY_MS, plus this much for a loaded machine.
const RECONNECT_SLACK_MS = 3_000;
const CONSOLE_SLACK_MS = 2_000;   // console messages arrive a little after what caused them

let servers = [];
let browser;
let page;

// ---- console errors ------------------------------------------------------------------------------

// Every console error and uncaught exception the page produces, and the windows in which a given
// kind of failed request is expected (a server being restarted; a trigger the servers reject).
const consoleErrors = [];
const allowances = [];

// Chromium logs every failed request as "Failed to load resource: …" with the request's URL. These
// are the failures of a request to a server that is going down or not up yet. SOCKET_NOT_CONNECTED
// is a connection the kernel accepted into the listen backlog and reset when the server closed its
// listener, before Chromium could ask for the peer's address (ENOTCONN; seen once in CI, on
// actix-web's /health poll while it shut down).
const DOWN_TEXT = /^Failed to load resource: (net::ERR_(CONNECTION_REFUSED|CONNECTION_RESET|EMPTY_RESPONSE|SOCKET_NOT_CONNECTED)|the server responded with a status of 503 \(Service Unavailable\))$/;
const REJECTED_TEXT = /^Failed to load resource: the server responded with a status of 400 \(Bad Request\)$/;

function allow({ port, path, text, max = Infinity }) {
  const window = { port, path, text, max, used: 0, from: Date.now(), to: Infinity };
  allowances.push(window);
  return { close: () => { window.to = Date.now() + CONSOLE_SLACK_MS; } };
}

function isAllowed(message) {
  if (message.kind !== 'console') return false;
  let url;
  try { url = new URL(message.url); } catch { return false; }
  const window = allowances.find((w) => message.at >= w.from && message.at <= w.to && w.used < w.max
    && url.hostname === '127.0.0.1' && Number(url.port) === w.port && url.pathname === w.path && w.text.test(message.text));
  if (window) window.used += 1;
  return !!window;
}

// ---- helpers -------------------------------------------------------------------------------------

async function saveFailure(name) {
  try {
    mkdirSync(RESULTS_DIR, { recursive: true });
    const base = join(RESULTS_DIR, name.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-|-$/g, ''));
    if (page) await page.screenshot({ path: `${base}.png`, fullPage: true, timeout: 10_000 }).catch(() => {});
    writeFileSync(`${base}.servers.log`, servers.map((s) => `===== ${s.pkg} (port ${s.port})\n${s.output}`).join('\n'));
    writeFileSync(`${base}.console.log`, consoleErrors.map((m) => `${new Date(m.at).toISOString()} ${m.kind} ${m.url} ${m.text}`).join('\n'));
  } catch { /* best effort: the test's own error is what matters */ }
}

// A test whose failure (or timeout) leaves a screenshot, the servers' output and the console in test-results/.
function e2e(name, fn) {
  test(name, { timeout: TEST_TIMEOUT_MS }, async (t) => {
    let done = false;
    // The signal is also aborted when a test ends; only a timeout aborts it while fn still runs.
    t.signal.addEventListener('abort', () => { if (!done) { done = true; saveFailure(name); } }, { once: true });
    try {
      await fn(t);
      done = true;
    } catch (err) {
      if (!done) { done = true; await saveFailure(name); }
      throw err;
    }
  });
}

function waitForCard(key, check, what, timeout = 5_000) {
  return waitUntil(async () => { const c = await readCard(page, key); return check(c) ? c : null; },
    { timeout, what: `${key}: ${what}` });
}

// Fills in and submits the publish form, then waits until no result line is pending.
async function publish({ event, data, mode = 'text', target = 'all' }) {
  await page.getByTestId('publish-event').fill(event);
  await page.getByTestId('publish-mode').selectOption(mode);
  await page.getByTestId('publish-target').selectOption(target);
  await page.getByTestId('publish-data').fill(data);
  await page.getByTestId('publish-submit').click();
  const lines = () => page.evaluate(() => [...document.querySelectorAll('#publish-result li')].map((li) => ({
    key: li.dataset.framework, status: li.dataset.status, text: li.textContent,
  })));
  return waitUntil(async () => {
    const current = await lines();
    return current.length === FRAMEWORKS.length && current.every((l) => l.status !== 'pending') ? current : null;
  }, { timeout: 8_000, what: 'an answer from every server on the publish result lines' });
}

// ---- set-up and tear-down ------------------------------------------------------------------------

before(async () => {
  servers = await startServers();
  browser = await launchBrowser();
  page = browser.page;
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push({ at: Date.now(), kind: 'console', text: m.text(), url: m.location().url ?? '' });
  });
  page.on('pageerror', (err) => consoleErrors.push({ at: Date.now(), kind: 'pageerror', text: String(err?.stack || err), url: '' }));
  if (PAGE_FROM_DISK) {
    diskServer = createServer((req, res) => {
      const file = req.method === 'GET' && { '/': PAGE_FILE, '/frameworks.js': FRAMEWORKS_FILE }[req.url];
      const type = req.url === '/' ? 'text/html; charset=utf-8' : 'text/javascript';
      res.writeHead(file ? 200 : 404, { 'content-type': file ? type : 'text/plain' });
      res.end(file ? readFileSync(file) : 'not found');
    });
    await new Promise((done, fail) => { diskServer.once('error', fail); diskServer.listen(0, '127.0.0.1', done); });
    pageUrl = `http://127.0.0.1:${diskServer.address().port}/`;
  }
  await page.goto(pageUrl, { waitUntil: 'load', timeout: 10_000 });
}, { timeout: 60_000 });

after(async () => {
  try {
    if (browser) await browser.close();
  } finally {
    diskServer?.close();
    await stopServers(servers);
  }
}, { timeout: 30_000 });

// ---- the tests -----------------------------------------------------------------------------------

e2e('every server serves the current web-demo/index.html at /', async () => {
  const page = readFileSync(PAGE_FILE, 'utf8');
  assert.ok(page.includes(FRAMEWORKS_TAG), `web-demo/index.html loads its list with ${FRAMEWORKS_TAG}`);
  const onDisk = page.replace(FRAMEWORKS_TAG, `<script>\n${readFileSync(FRAMEWORKS_FILE, 'utf8')}</script>`);
  for (const server of servers) {
    const res = await fetch(`${server.base}/`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(res.status, 200, `${server.key}: GET / answered ${res.status}`);
    const served = await res.text();
    if (PAGE_FROM_DISK) continue;   // the browser gets the file from disk anyway
    assert.ok(served === onDisk,
      `${server.pkg} serves a different page than web-demo/index.html: the binaries are older than the page. ` +
      `Rebuild them (cargo build ${FRAMEWORKS.map((f) => `-p ${f.pkg}`).join(' ')}), ` +
      'or run with E2E_PAGE=disk to test the file on disk.');
  }
});

e2e('every card opens its stream and shows ticks', async () => {
  for (const { key } of FRAMEWORKS) {
    const first = await waitForCard(key, (c) => c.state === 'open' && c.entries.filter((e) => e.event === 'tick').length >= 3,
      'state open and at least three ticks in the log', OPEN_TIMEOUT_MS);
    assert.equal(first.stateText, 'open');
    // The last id keeps going up.
    await waitForCard(key, (c) => c.lastId > first.lastId, `last id above ${first.lastId}`, 10 * SETTINGS.TICK_MS + 2_000);

    const c = await readCard(page, key);
    const ticks = c.entries;
    assert.ok(ticks.every((e) => e.event === 'tick'), `${key}: only ticks so far, got ${JSON.stringify(ticks.slice(0, 5))}`);
    assert.equal(Number(ticks[0].id), c.lastId, `${key}: the newest log entry carries the last id`);
    ticks.forEach((entry, i) => {
      // Nothing but ticks was published yet, so tick K has id K; newest first, no gaps.
      const data = JSON.parse(entry.data);
      assert.equal(data.tick, Number(entry.id), `${key}: tick number equals id in ${entry.data}`);
      assert.match(data.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, `${key}: tick time in ${entry.data}`);
      if (i > 0) assert.equal(Number(ticks[i - 1].id), Number(entry.id) + 1, `${key}: ids consecutive`);
    });
    // /health is read once the stream is open: it must be this card's own framework.
    const health = await waitForCard(key, (x) => x.health.startsWith(`${key} · `), `"Server says" showing ${key}`);
    assert.ok(!health.health.includes('expected'), `${key}: health says ${health.health}`);
  }
  const all = `${FRAMEWORKS.length} of ${FRAMEWORKS.length} connected`;
  await waitUntil(async () => (await page.locator('#summary').textContent()) === all,
    { timeout: 3_000, what: `the summary "${all}"` });
});

e2e('a custom event published to all servers appears in every card', async () => {
  const event = 'e2e-greeting';
  const data = 'héllo from the e2e test ✓\nsecond line';
  const lines = await publish({ event, data });
  for (const { key } of FRAMEWORKS) {
    const line = lines.find((l) => l.key === key);
    assert.ok(line, `${key}: no result line in ${JSON.stringify(lines)}`);
    assert.equal(line.status, 'ok', `${key}: ${line.text}`);
    const m = line.text.match(/^(.+): accepted \(202\): id (\d+), event “(.+)”, delivered to (\d+) clients?$/);
    assert.ok(m, `${key}: unexpected result line ${JSON.stringify(line.text)}`);
    assert.equal(m[1], key);
    assert.equal(m[3], event);
    assert.ok(Number(m[4]) >= 1, `${key}: delivered to at least this page's stream: ${line.text}`);
    const id = m[2];
    const c = await waitForCard(key, (x) => x.entries.some((e) => e.event === event), `a log entry "${event}"`);
    const entry = c.entries.find((e) => e.event === event);
    assert.deepEqual(entry, { event, id, data, gap: false }, `${key}: the log entry matches what the server accepted`);
  }
  const names = await page.locator('#known-names li').allTextContents();
  assert.ok(names.includes(event), `the page now listens for ${event}: ${names}`);
});

e2e('a trigger every server rejects shows each server\'s own error text', async () => {
  const event = 'tick';   // reserved for the servers' own events: a 400 from each
  const data = 'this must not be published';
  // What each server answers to exactly this request, asked directly.
  const expected = {};
  for (const server of servers) {
    const res = await fetch(`${server.base}/trigger`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ data, event }),
      signal: AbortSignal.timeout(5_000),
    });
    const body = await res.json();
    assert.equal(res.status, 400, `${server.key}: direct POST answered ${res.status} ${JSON.stringify(body)}`);
    assert.equal(typeof body.error, 'string');
    assert.match(body.error, /tick/, `${server.key}: the error names the reserved event`);
    expected[server.key] = body.error;
  }

  // Chromium logs each 400 answer as a console error: expected here, once per server.
  const windows = servers.map((s) => allow({ port: s.port, path: '/trigger', text: REJECTED_TEXT, max: 1 }));
  try {
    const lines = await publish({ event, data });
    for (const { key } of FRAMEWORKS) {
      const line = lines.find((l) => l.key === key);
      assert.ok(line, `${key}: no result line`);
      assert.equal(line.status, 'error', `${key}: ${line.text}`);
      assert.equal(line.text, `${key}: rejected with 400: ${expected[key]}`);
    }
    assert.equal(await page.getByTestId('publish-error').textContent(), '', 'no inline error: the page sent it');
  } finally {
    windows.forEach((w) => w.close());
  }
  // Rejected means nothing published: ticks go on, the payload shows up nowhere.
  await sleep(2 * SETTINGS.TICK_MS);
  for (const { key } of FRAMEWORKS) {
    const c = await readCard(page, key);
    assert.equal(c.state, 'open', `${key}: ${c.stateText}`);
    assert.ok(!c.entries.some((e) => e.data.includes(data)), `${key}: the rejected payload appeared in the log`);
  }
});

for (const { key, pkg, port } of FRAMEWORKS) {
  e2e(`${key}: after a restart the card reconnects by itself and shows the gap`, async (t) => {
    const server = servers.find((s) => s.key === key);
    // The browser resumes with its last id; the new process must not have reached it yet.
    const before = await waitForCard(key, (c) => c.state === 'open' && c.lastId >= 10, 'open with last id ≥ 10', 10_000);
    const gapsBefore = before.entries.filter((e) => e.gap).length;

    // The stream fails while the server is down, and so may the card's /health poll (every 5 s)
    // if it happens to fall in those few milliseconds.
    const windows = ['/events', '/health'].map((path) => allow({ port, path, text: DOWN_TEXT }));
    const window = { close: () => windows.forEach((w) => w.close()) };
    try {
      const stopAt = Date.now();
      const stopped = await server.stop();
      const stopMs = Date.now() - stopAt;
      assert.deepEqual(stopped, { code: 0, signal: null }, `${pkg} exits 0 on SIGTERM`);
      // The stream ended: the card says so and keeps the last id it saw.
      const down = await waitForCard(key, (c) => c.state !== 'open', 'no longer open once its server is gone', 3_000);
      assert.match(down.stateText, /^(error — retrying|connecting… — retrying|closed — retrying in \d+ s)$/);
      const lastSeen = down.lastId;

      const ready = await server.start();
      const back = await waitForCard(key, (c) => c.state === 'open' && c.entries.filter((e) => e.gap).length > gapsBefore,
        'open again with a gap event', SETTINGS.RETRY_MS + RECONNECT_SLACK_MS + 2_000);
      const took = Date.now() - ready;
      assert.ok(took <= SETTINGS.RETRY_MS + RECONNECT_SLACK_MS, `${key}: reconnected ${took} ms after its server was up again`);
      t.diagnostic(`${pkg} exited ${stopMs} ms after SIGTERM; the card showed the gap ${took} ms after the new process was listening`);
      assert.equal(back.stateText, 'open — reconnected');
      assert.equal(back.reconnects, before.reconnects + 1, `${key}: reconnect count`);

      // The gap names the id the browser resumed from; the new process's buffer starts at 1.
      const gap = back.entries.find((e) => e.gap);
      assert.equal(gap.event, 'gap');
      assert.equal(gap.id, '', 'a gap carries no id');
      const info = JSON.parse(gap.data);
      assert.equal(info.last_event_id, lastSeen, `${key}: gap ${gap.data} resumes from the last id seen (${lastSeen})`);
      assert.ok(info.oldest_id === null || info.oldest_id === 1, `${key}: oldest id of a fresh process in ${gap.data}`);
      // After the gap, the new process's ids: the last id starts over.
      await waitForCard(key, (c) => c.lastId !== null && c.lastId < lastSeen, `last id below ${lastSeen} (ids restarted)`);
    } finally {
      window.close();
    }
    // Nobody else noticed.
    for (const other of FRAMEWORKS) {
      if (other.key === key) continue;
      const c = await readCard(page, other.key);
      assert.equal(c.state, 'open', `${other.key} while ${key} restarted: ${c.stateText}`);
    }
  });
}

e2e('no console errors except failed requests while a server was down and the rejected triggers', async () => {
  await sleep(CONSOLE_SLACK_MS / 2);   // let late console messages in
  const unexpected = consoleErrors.filter((m) => !isAllowed(m));
  assert.deepEqual(unexpected.map((m) => `${m.kind}: ${m.text}${m.url ? ` (${m.url})` : ''}`), []);
});
