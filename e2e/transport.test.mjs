// The transport in a real browser (contract section 8): over HTTP/1.1 Chromium opens at most six
// connections to one host, so of eight EventSources to one server only six ever open; over
// HTTPS, where Chromium speaks HTTP/2, all eight share one connection and receive ticks. Then the
// demo page over HTTPS with all six cards live. The servers use a development certificate made
// by the workspace's `dev-cert`; Chromium is told to accept it (ignoreHTTPSErrors).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { FRAMEWORKS, Server, devCert, launchBrowser, sleep, startServers, stopServers, waitUntil } from './harness.mjs';

const STREAMS = 8;
// Chromium's connections per host (and per scheme and port) over HTTP/1.1.
const HTTP1_LIMIT = 6;
// How long the two streams past the limit are watched, to see that they stay queued.
const QUEUED_WATCH_MS = 3_000;
const TEST_TIMEOUT_MS = 60_000;

let browser;
let page;
let cert;

before(async () => {
  cert = devCert();
  browser = await launchBrowser({ ignoreHTTPSErrors: true });
  page = browser.page;
});

after(async () => {
  await browser?.close();
  cert?.remove();
});

// Opens STREAMS EventSources to `${base}/events` from a page of the same origin.
async function openStreams(base) {
  await page.goto(`${base}/health`, { waitUntil: 'load', timeout: 10_000 });
  await page.evaluate((n) => {
    window.streams = Array.from({ length: n }, () => {
      const source = new EventSource('/events');
      source.ticks = 0;
      source.addEventListener('tick', () => { source.ticks += 1; });
      return source;
    });
  }, STREAMS);
}

// How many of the streams have received a tick, and the protocol the page itself came over.
function state() {
  return page.evaluate(() => ({
    live: window.streams.filter((s) => s.ticks > 0).length,
    connecting: window.streams.filter((s) => s.readyState === EventSource.CONNECTING).length,
    protocol: performance.getEntriesByType('navigation')[0]?.nextHopProtocol,
  }));
}

async function closeStreams() {
  await page.evaluate(() => window.streams?.forEach((s) => s.close())).catch(() => {});
  await page.goto('about:blank');
}

// Runs `fn` with one server of `framework` started with `env`, stopped (by its PID) afterwards.
async function withServer(framework, env, fn) {
  const server = new Server(framework, env);
  await server.start();
  try {
    await fn(server);
  } catch (err) {
    throw new Error(`${err.message}\n${server.pkg}'s output:\n${server.output.slice(-4000)}`);
  } finally {
    await closeStreams();
    await server.stop();
  }
}

for (const framework of FRAMEWORKS) {
  test(`${framework.key}: over HTTP/1.1 only ${HTTP1_LIMIT} of ${STREAMS} EventSources ever open`, { timeout: TEST_TIMEOUT_MS }, async () => {
    await withServer(framework, {}, async (server) => {
      await openStreams(server.base);
      const seen = await waitUntil(async () => {
        const now = await state();
        return now.live >= HTTP1_LIMIT ? now : null;
      }, { timeout: 15_000, what: `${HTTP1_LIMIT} streams receiving ticks over HTTP/1.1` });
      assert.equal(seen.protocol, 'http/1.1');
      // The six connections stay busy, so the other two can never start.
      await sleep(QUEUED_WATCH_MS);
      const later = await state();
      assert.equal(later.live, HTTP1_LIMIT, `${framework.key}: ${later.live} of ${STREAMS} streams got ticks over HTTP/1.1`);
      assert.equal(later.connecting, STREAMS - HTTP1_LIMIT);
    });
  });

  test(`${framework.key}: over HTTPS with HTTP/2 all ${STREAMS} EventSources receive ticks`, { timeout: TEST_TIMEOUT_MS }, async () => {
    await withServer(framework, cert.env, async (server) => {
      assert.ok(server.base.startsWith('https://'));
      await openStreams(server.base);
      const seen = await waitUntil(async () => {
        const now = await state();
        return now.live === STREAMS ? now : null;
      }, { timeout: 15_000, what: `all ${STREAMS} streams receiving ticks over HTTP/2` });
      assert.equal(seen.protocol, 'h2');
    });
  });
}

test('the demo page over HTTPS: every card live', { timeout: TEST_TIMEOUT_MS * 2 }, async () => {
  const servers = await startServers(FRAMEWORKS, cert.env);
  try {
    await page.goto(`${servers[0].base}/`, { waitUntil: 'load', timeout: 10_000 });
    const all = `${FRAMEWORKS.length} of ${FRAMEWORKS.length} connected`;
    await waitUntil(async () => (await page.locator('#summary').textContent()) === all,
      { timeout: 15_000, what: `the summary "${all}" on the page served over HTTPS` });
    const protocol = await page.evaluate(() => performance.getEntriesByType('navigation')[0]?.nextHopProtocol);
    assert.equal(protocol, 'h2');
  } finally {
    await page.goto('about:blank');
    await stopServers(servers);
  }
});
