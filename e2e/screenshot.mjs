// Renders web-demo/demo.png: the six cards, live, as served by the axum server.
// Run with `npm run screenshot` (starts and stops the six servers itself, like the tests).
import { join } from 'node:path';
import { FRAMEWORKS, REPO_DIR, launchBrowser, readCard, sleep, startServers, stopServers, waitUntil } from './harness.mjs';

const OUT = process.argv[2] || join(REPO_DIR, 'web-demo', 'demo.png');
// The cards are two rows of three at 1280 CSS px; drawn at this scale they fit in ~850×900 pixels.
const SCALE = 0.68;

const servers = await startServers();
let browser;
try {
  browser = await launchBrowser({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: SCALE });
  const { page } = browser;
  await page.emulateMedia({ colorScheme: 'light', reducedMotion: 'reduce' });
  await page.goto(`http://127.0.0.1:${FRAMEWORKS[0].port}/`, { waitUntil: 'load', timeout: 10_000 });

  const ready = (min) => waitUntil(async () => {
    for (const { key } of FRAMEWORKS) {
      const c = await readCard(page, key);
      if (c.state !== 'open' || c.entries.length < min || !c.health.startsWith(key)) return false;
    }
    return true;
  }, { timeout: 15_000, what: `every card open with ${min} log entries` });

  await ready(8);
  await sleep(5_000);            // events/s is averaged over 5 s
  await page.getByTestId('publish-event').fill('greeting');
  await page.getByTestId('publish-data').fill('hello from the demo page\n(a second line)');
  await page.getByTestId('publish-submit').click();
  await waitUntil(async () => {
    for (const { key } of FRAMEWORKS) {
      if (!(await readCard(page, key)).entries.some((e) => e.event === 'greeting')) return false;
    }
    return true;
  }, { timeout: 5_000, what: 'the greeting in every card' });
  await sleep(700);              // a couple of ticks on top of it

  const box = await page.locator('#cards').boundingBox();
  const margin = 8;
  await page.screenshot({
    path: OUT,
    fullPage: true,
    clip: { x: box.x - margin, y: box.y - margin, width: box.width + 2 * margin, height: box.height + 2 * margin },
    timeout: 10_000,
  });
  console.log(`wrote ${OUT}`);
} finally {
  await browser?.close();
  await stopServers(servers);
}
