// The six example servers as one cluster (contract section 7): a redis-server of the test's own,
// the six servers on it, and nginx in front of them (scripts/nginx/), driven from the demo page in
// headless Chromium. What `scripts/run-all.sh --cluster` starts, checked as a person would see it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  FRAMEWORKS, SETTINGS, devCert, launchBrowser, readCard, sleep, startNginx, startRedis, startServers, stopServers, waitUntil,
} from './harness.mjs';

const TEST_TIMEOUT_MS = 45_000;
// The browser retries RETRY_MS after a failed attempt; a loaded machine may add this much.
const RECONNECT_SLACK_MS = 4_000;

let redis;
let servers = [];
let nginx;
let browser;
let page;

before(async () => {
  redis = await startRedis();
  servers = await startServers(FRAMEWORKS, { EVENT_LOG: redis.url });
  nginx = await startNginx(servers);
  browser = await launchBrowser();
  page = browser.page;
  await page.goto(servers[0].base + '/', { waitUntil: 'load', timeout: 10_000 });
}, { timeout: 90_000 });

after(async () => {
  try {
    if (browser) await browser.close();
  } finally {
    await stopServers(servers);
    await nginx?.stop();
    await redis?.stop();
  }
}, { timeout: 30_000 });

function waitForCard(onPage, key, check, what, timeout = 8_000) {
  return waitUntil(async () => { const c = await readCard(onPage, key); return check(c) ? c : null; },
    { timeout, what: `${key}: ${what}` });
}

/** The ids of a card's log, oldest first (the log shows the newest first; gap events have none). */
function ids(card) {
  return card.entries.filter((e) => e.id !== '').map((e) => Number(e.id)).reverse();
}

/**
 * Publishes a text event to one server through the page's form and returns the id the answer
 * line gives (failing unless the server accepted it).
 */
async function publishFromPage(onPage, { event, target, data }) {
  await onPage.getByTestId('publish-event').fill(event);
  await onPage.getByTestId('publish-mode').selectOption('text');
  await onPage.getByTestId('publish-target').selectOption(target);
  await onPage.getByTestId('publish-data').fill(data);
  await onPage.getByTestId('publish-submit').click();
  const line = await waitUntil(async () => {
    const lines = await onPage.evaluate(() => [...document.querySelectorAll('#publish-result li')].map((li) => li.textContent));
    return lines.length === 1 && !/sending/.test(lines[0]) ? lines[0] : null;
  }, { what: `the answer on the publish result line (published to ${target})` });
  const id = line.match(/id (\d+)/)?.[1];
  assert.ok(id, `accepted with an id: ${line}`);
  return id;
}

/** Fails unless `list` counts up by exactly one. */
function assertConsecutive(list, what) {
  for (let i = 1; i < list.length; i++) {
    assert.equal(list[i], list[i - 1] + 1, `${what}: id ${list[i - 1]} followed by ${list[i]} (ids ${list.join(',')})`);
  }
}

test('one cluster: every card shows the same ids, and an event published to one server reaches all six', { timeout: TEST_TIMEOUT_MS }, async () => {
  for (const { key } of FRAMEWORKS) await waitForCard(page, key, (c) => c.state === 'open' && c.lastId >= 3, 'open with last id ≥ 3');
  // Published to rocket only, through the page's form.
  const data = `to rocket alone ${Date.now()}`;
  const id = await publishFromPage(page, { event: 'e2e-cluster', target: 'rocket', data });
  const seen = {};
  for (const { key } of FRAMEWORKS) {
    // Each card shows only what came after it connected, which may be a single tick before the
    // event published here: so wait for the two ids after it too. Every live card gets those.
    const card = await waitForCard(page, key, (c) => c.entries.some((e) => e.data === data) && ids(c).includes(Number(id) + 2),
      `shows the event published to rocket and the two ids after it`);
    const entry = card.entries.find((e) => e.data === data);
    assert.equal(entry.id, id, `${key} shows it with the id rocket gave`);
    assert.equal(entry.event, 'e2e-cluster');
    seen[key] = card;
  }
  // The same ticks with the same ids everywhere: one clock, one sequence.
  const reference = new Map(seen.axum.entries.filter((e) => e.id !== '').map((e) => [e.id, e.data]));
  for (const { key } of FRAMEWORKS) {
    const common = seen[key].entries.filter((e) => reference.has(e.id));
    assert.ok(common.length >= 3, `${key} and axum share ids (${key}: ${ids(seen[key]).join(',')}; axum: ${ids(seen.axum).join(',')})`);
    for (const e of common) assert.equal(e.data, reference.get(e.id), `${key}: id ${e.id} is the same event as on axum`);
    assertConsecutive(ids(seen[key]), key);
  }
});

test('one server killed and restarted: the others keep the sequence, and its card resumes without a gap', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const victim = servers.find((s) => s.key === 'warp');
  const before = await waitForCard(page, 'warp', (c) => c.state === 'open' && c.lastId >= 5, 'open with last id ≥ 5');
  await victim.kill();
  await waitForCard(page, 'warp', (c) => c.state !== 'open', 'no longer open once its server was killed', 5_000);
  await sleep(SETTINGS.TICK_MS * 3);
  const ready = await victim.start();
  const back = await waitForCard(page, 'warp', (c) => c.state === 'open' && c.reconnects > before.reconnects && c.lastId > before.lastId + 3,
    'open again and past the ticks published while it was down', SETTINGS.RETRY_MS + RECONNECT_SLACK_MS + 3_000);
  t.diagnostic(`warp's card was back ${Date.now() - ready} ms after the new process was listening`);
  assert.ok(!back.entries.some((e) => e.gap), 'no gap: the shared log still holds what it missed');
  assertConsecutive(ids(back), 'warp, across its restart');
  for (const { key } of FRAMEWORKS) {
    if (key === 'warp') continue;
    const card = await readCard(page, key);
    assert.equal(card.state, 'open', `${key} while warp was down: ${card.stateText}`);
    assert.equal(card.reconnects, 0, `${key} never reconnected`);
    assertConsecutive(ids(card), key);
  }
});

test('behind nginx: a card whose instance dies reconnects through nginx to another one and goes on with the next id', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  // Only this page's one card holds a stream, so the instance serving it is the one with a client.
  await page.evaluate(() => disconnectAll());
  const viaNginx = await browser.context.newPage();
  try {
    await viaNginx.goto(`${nginx.base}/?all=${encodeURIComponent(nginx.base)}&autoconnect=0`, { waitUntil: 'load', timeout: 10_000 });
    await viaNginx.evaluate(() => cards.get('axum').connect(null));
    const before = await waitForCard(viaNginx, 'axum', (c) => c.state === 'open' && c.lastId !== null && ids(c).length >= 3, 'open through nginx');
    const serving = await waitUntil(async () => {
      const counts = await Promise.all(servers.map(async (s) => {
        const health = await (await fetch(`${s.base}/health`)).json();
        return { server: s, clients: health.clients };
      }));
      const busy = counts.filter((c) => c.clients > 0);
      return busy.length === 1 && busy[0].clients === 1 ? busy[0].server : null;
    }, { what: 'exactly one instance serving the card through nginx' });
    await serving.kill();
    const back = await waitForCard(viaNginx, 'axum', (c) => c.state === 'open' && c.reconnects === before.reconnects + 1 && c.lastId > before.lastId + 2,
      'open again through nginx, past the ids published meanwhile', SETTINGS.RETRY_MS + RECONNECT_SLACK_MS + 3_000);
    t.diagnostic(`killed ${serving.pkg}; the card reconnected through nginx`);
    assert.ok(!back.entries.some((e) => e.gap), 'no gap after the reconnect through nginx');
    assertConsecutive(ids(back), 'the card behind nginx, across the death of its instance');
    await serving.start();
  } finally {
    await viaNginx.close();
  }
});

test('behind nginx over HTTPS: the demo page with every card through one address, over HTTP/2, and an event published through it reaching all of them', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  // What scripts/run-all.sh --cluster --tls serves. Over plain HTTP/1.1 six streams to one address
  // take every connection Chromium opens to a host, and the page's /health and publish requests
  // wait behind them; over HTTP/2 all of them share one connection.
  await page.evaluate(() => disconnectAll());
  const cert = devCert();
  let tlsNginx;
  let tlsBrowser;
  try {
    tlsNginx = await startNginx(servers, { cert });
    tlsBrowser = await launchBrowser({ ignoreHTTPSErrors: true });
    const onPage = tlsBrowser.page;
    await onPage.goto(`${tlsNginx.base}/?all=${encodeURIComponent(tlsNginx.base)}`, { waitUntil: 'load', timeout: 10_000 });
    const protocol = await onPage.evaluate(() => performance.getEntriesByType('navigation')[0]?.nextHopProtocol);
    assert.equal(protocol, 'h2', 'the page comes from nginx over HTTP/2');
    for (const { key } of FRAMEWORKS) {
      await waitForCard(onPage, key, (c) => c.state === 'open' && /· \d+ clients?/.test(c.health),
        'open through nginx, with the /health it fetched through nginx beside its stream', 15_000);
    }
    // Every card's stream reached an instance (nginx spreads them round-robin).
    await waitUntil(async () => {
      const counts = await Promise.all(servers.map(async (s) => (await (await fetch(`${s.base}/health`)).json()).clients));
      return counts.reduce((a, b) => a + b, 0) === FRAMEWORKS.length;
    }, { what: `${FRAMEWORKS.length} streams counted by the instances together` });
    // A seventh request beside the six streams: a publish through nginx, by the page's form.
    const data = `through nginx over HTTP/2 ${Date.now()}`;
    const id = await publishFromPage(onPage, { event: 'e2e-cluster-h2', target: FRAMEWORKS[0].key, data });
    for (const { key } of FRAMEWORKS) {
      const card = await waitForCard(onPage, key, (c) => c.entries.some((e) => e.data === data), 'shows the event published through nginx');
      assert.equal(card.entries.find((e) => e.data === data).id, id, `${key} shows it with the id the cluster gave`);
      assertConsecutive(ids(card), `${key} through nginx over HTTP/2`);
    }
    t.diagnostic(`six streams, /health and a publish over one HTTP/2 connection to nginx; the event got id ${id}`);
  } finally {
    await tlsBrowser?.close();
    await tlsNginx?.stop();
    cert.remove();
  }
});
