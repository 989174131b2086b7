// Plumbing shared by the tests and the screenshot script: the example server processes (started from
// the workspace's built binaries, stopped by their own PIDs) and a headless Chromium.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runInNewContext } from 'node:vm';
import { chromium } from 'playwright-core';

export const E2E_DIR = dirname(fileURLToPath(import.meta.url));
export const REPO_DIR = resolve(E2E_DIR, '..');
export const RESULTS_DIR = join(E2E_DIR, 'test-results');

// Where the server binaries are (`cargo build` output); E2E_BIN_DIR overrides.
export const BIN_DIR = resolve(process.env.E2E_BIN_DIR || join(REPO_DIR, 'target', 'debug'));
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const HOST = '127.0.0.1';

// Settings the tests rely on: fast ticks, a short reconnection delay, heartbeats well inside it.
export const SETTINGS = { TICK_MS: 300, RETRY_MS: 1000, HEARTBEAT_MS: 1000 };

// Every example server: the list web-demo/frameworks.js holds (generated from each example's
// Cargo.toml), as `key` (the framework's name), `pkg` (package and binary) and default `port`.
export const FRAMEWORKS = runInNewContext(
  `${readFileSync(join(REPO_DIR, 'web-demo', 'frameworks.js'), 'utf8')}; FRAMEWORKS`,
).map(({ name, package: pkg, port }) => ({ key: name, pkg, port }));

const READY_TIMEOUT_MS = 15_000;   // from spawn to the `listening on http://` line
const TERM_TIMEOUT_MS = 4_000;     // SIGTERM → exit (the contract says 2 s), then SIGKILL
const KILL_TIMEOUT_MS = 2_000;     // SIGKILL → exit
const OUTPUT_KEEP = 64 * 1024;     // characters of each server's output kept for diagnostics

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

// `promise`, or `fallback()` once `ms` pass — whichever comes first. The timer is cleared either
// way, so a bound that was not needed does not keep the process alive.
function within(promise, ms, fallback) {
  let timer;
  const expired = new Promise((done) => { timer = setTimeout(() => done(fallback()), ms); });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

// Every child still running, and every browser profile not yet removed: cleaned up if this
// process goes away without doing it itself.
const running = new Set();
const profiles = new Set();
process.on('exit', () => {
  for (const child of running) { try { child.kill('SIGKILL'); } catch { /* gone */ } }
  for (const dir of profiles) { try { rmSync(dir, { recursive: true, force: true }); } catch { /* best effort */ } }
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    for (const child of running) { try { child.kill('SIGKILL'); } catch { /* gone */ } }
    process.exit(130);
  });
}

/** One example server binary on its default port (with `env` on top of the test settings). */
export class Server {
  constructor({ key, pkg, port }, env = {}) {
    Object.assign(this, { key, pkg, port, env });
    this.bin = join(BIN_DIR, pkg);
    this.base = `${env.TLS_CERT ? 'https' : 'http'}://${HOST}:${port}`;
    this.child = null;
    this.output = '';
    this.exited = null;      // Promise of { code, signal } for the current child
    this.starts = 0;
  }

  get pid() { return this.child?.pid; }

  /** Spawns the binary and resolves once it printed `listening on http://` (bounded). */
  async start() {
    if (this.child) throw new Error(`${this.pkg} is already running (pid ${this.pid})`);
    this.starts += 1;
    this.output += `--- start ${this.starts} (${new Date().toISOString()})\n`;
    const child = spawn(this.bin, [], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        HOST, PORT: String(this.port),
        TICK_MS: String(SETTINGS.TICK_MS), RETRY_MS: String(SETTINGS.RETRY_MS), HEARTBEAT_MS: String(SETTINGS.HEARTBEAT_MS),
        // Empty counts as unset: defaults, whatever the calling shell exported.
        REPLAY_CAPACITY: '', MAX_CLIENTS: '', CLIENT_BUFFER: '', TRIGGER_TOKEN: '', CORS_ORIGIN: '',
        RUST_LOG: 'info', NO_COLOR: '1', EVENT_LOG: '', EVENT_LOG_KEY: '',
        ...this.env,
      },
    });
    this.child = child;
    running.add(child);
    this.exited = new Promise((done) => child.once('exit', (code, signal) => {
      running.delete(child);
      if (this.child === child) this.child = null;
      done({ code, signal });
    }));
    const spawned = new Promise((done, fail) => { child.once('spawn', done); child.once('error', fail); });

    let seen = '';
    const ready = new Promise((done) => {
      const onData = (chunk) => {
        const text = chunk.toString();
        this.output = (this.output + text).slice(-OUTPUT_KEEP);
        seen += text;
        if (/listening on https?:\/\//.test(seen)) done(true);
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
    });
    try {
      await spawned;
    } catch (err) {
      running.delete(child);
      this.child = null;
      throw new Error(`cannot start ${this.bin}: ${err.message} (build it with cargo build -p ${this.pkg}, or set E2E_BIN_DIR)`);
    }
    const outcome = await within(
      Promise.race([ready.then(() => 'ready'), this.exited.then(({ code, signal }) => `exited (code ${code}, signal ${signal})`)]),
      READY_TIMEOUT_MS, () => `printed no "listening on http://" line within ${READY_TIMEOUT_MS} ms`);
    if (outcome !== 'ready') {
      await this.stop().catch(() => {});
      throw new Error(`${this.pkg} on port ${this.port} ${outcome}; its output:\n${seen.trim()}`);
    }
    return Date.now();
  }

  /** SIGKILL (by its own PID), as a crash or the OOM killer would; resolves once it is gone. */
  async kill() {
    const child = this.child;
    if (!child) return null;
    const exited = this.exited;
    child.kill('SIGKILL');
    const result = await within(exited, KILL_TIMEOUT_MS, () => null);
    if (!result) throw new Error(`${this.pkg} (pid ${child.pid}) did not exit after SIGKILL`);
    return result;
  }

  /** SIGTERM, wait for the exit (bounded), SIGKILL if it did not go. Resolves to { code, signal }. */
  async stop() {
    const child = this.child;
    if (!child) return null;
    const exited = this.exited;
    child.kill('SIGTERM');
    let result = await within(exited, TERM_TIMEOUT_MS, () => null);
    if (!result) {
      child.kill('SIGKILL');
      result = await within(exited, KILL_TIMEOUT_MS, () => null);
      if (!result) throw new Error(`${this.pkg} (pid ${child.pid}) did not exit after SIGKILL`);
      result = { ...result, killed: true };
    }
    return result;
  }
}

/** Starts every server (one after another: it is a 2-core machine), stopping those started if one fails. */
export async function startServers(frameworks = FRAMEWORKS, env = {}) {
  const servers = frameworks.map((f) => new Server(f, env));
  try {
    for (const server of servers) await server.start();
  } catch (err) {
    await stopServers(servers);
    throw err;
  }
  return servers;
}

export async function stopServers(servers) {
  const results = await Promise.allSettled(servers.map((server) => server.stop()));
  const failed = results.filter((r) => r.status === 'rejected').map((r) => r.reason.message);
  if (failed.length) throw new Error(failed.join('; '));
}

/** A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after). */
export function freePort() {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, HOST, () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });
}

/** Resolves once `port` accepts a connection (and `probe`, if given, answers), or fails after `timeout` ms. */
async function waitForPort(port, what, timeout = READY_TIMEOUT_MS, probe = null) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const answer = await new Promise((done) => {
      const socket = connect(port, HOST);
      socket.setTimeout(1_000, () => { socket.destroy(); done(false); });
      socket.once('error', () => done(false));
      socket.once('connect', () => {
        if (!probe) { socket.end(); done(true); return; }
        socket.write(probe.send);
        socket.once('data', (data) => { socket.end(); done(data.toString().startsWith(probe.expect)); });
      });
    });
    if (answer) return;
    if (Date.now() >= deadline) throw new Error(`${what} did not answer on port ${port} within ${timeout} ms`);
    await sleep(50);
  }
}

/** A child process of the tests' own (redis-server, nginx), stopped by its own PID. */
class Helper {
  constructor(name, command, args) {
    this.name = name;
    this.output = '';
    this.child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(this.child);
    this.exited = new Promise((done) => this.child.once('exit', (code, signal) => { running.delete(this.child); done({ code, signal }); }));
    const keep = (chunk) => { this.output = (this.output + chunk.toString()).slice(-OUTPUT_KEEP); };
    this.child.stdout.on('data', keep);
    this.child.stderr.on('data', keep);
    this.spawned = new Promise((done, fail) => {
      this.child.once('spawn', done);
      this.child.once('error', (err) => fail(new Error(`cannot start ${command}: ${err.message} (scripts/test.sh installs it from Debian's packages)`)));
    });
  }

  async stop() {
    this.child.kill('SIGTERM');
    if (await within(this.exited, TERM_TIMEOUT_MS, () => null)) return;
    this.child.kill('SIGKILL');
    await within(this.exited, KILL_TIMEOUT_MS, () => null);
  }
}

/** Debian's redis-server on a free port of 127.0.0.1, its data in a directory of its own. */
export async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sse-e2e-redis-'));
  profiles.add(dir);
  const redis = new Helper('redis-server', process.env.REDIS_SERVER || 'redis-server', [
    '--port', String(port), '--bind', HOST, '--dir', dir, '--save', '',
    '--appendonly', 'yes', '--appendfsync', 'always', '--daemonize', 'no',
  ]);
  await redis.spawned;
  await waitForPort(port, 'redis-server', READY_TIMEOUT_MS, { send: 'PING\r\n', expect: '+PONG' });
  redis.url = `redis://${HOST}:${port}`;
  const stop = redis.stop.bind(redis);
  redis.stop = async () => { await stop(); rmSync(dir, { recursive: true, force: true }); profiles.delete(dir); };
  return redis;
}

/**
 * Debian's nginx on a free port of 127.0.0.1 in front of `servers`, with scripts/nginx/'s config;
 * with `cert` (from devCert()), over HTTPS with HTTP/2 (the servers behind it stay plain HTTP).
 */
export async function startNginx(servers, { cert } = {}) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sse-e2e-nginx-'));
  profiles.add(dir);
  const tls = cert ? ['--tls', cert.env.TLS_CERT, cert.env.TLS_KEY] : [];
  const conf = execFileSync('bash', [join(REPO_DIR, 'scripts', 'nginx', 'render.sh'), dir, String(port),
    ...tls, ...servers.map((s) => `${HOST}:${s.port}`)]).toString().trim();
  const nginx = new Helper('nginx', process.env.NGINX || 'nginx', ['-p', dir, '-c', conf]);
  await nginx.spawned;
  await waitForPort(port, 'nginx');
  nginx.port = port;
  nginx.base = `${cert ? 'https' : 'http'}://${HOST}:${port}`;
  const stop = nginx.stop.bind(nginx);
  nginx.stop = async () => { await stop(); rmSync(dir, { recursive: true, force: true }); profiles.delete(dir); };
  return nginx;
}

/**
 * A development certificate for 127.0.0.1 made by the workspace's `dev-cert` binary, in a
 * temporary directory: `{ env: { TLS_CERT, TLS_KEY }, ca, remove() }`.
 */
export function devCert() {
  const dir = mkdtempSync(join(tmpdir(), 'sse-e2e-cert-'));
  const bin = join(BIN_DIR, 'dev-cert');
  try {
    execFileSync(bin, ['--out', dir], { stdio: 'ignore' });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`cannot make a certificate with ${bin} (build it with cargo build -p dev-cert): ${err.message}`);
  }
  return {
    env: { TLS_CERT: join(dir, 'cert.pem'), TLS_KEY: join(dir, 'key.pem') },
    ca: join(dir, 'ca.pem'),
    remove() { rmSync(dir, { recursive: true, force: true }); },
  };
}

/** Headless Chromium with a fresh profile directory; close() also removes the profile. */
export async function launchBrowser({ viewport = { width: 1280, height: 900 }, deviceScaleFactor = 1, ignoreHTTPSErrors = false } = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'sse-e2e-chromium-'));
  profiles.add(profile);
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      timeout: 30_000,
      viewport,
      deviceScaleFactor,
      ignoreHTTPSErrors,
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ],
    });
  } catch (err) {
    rmSync(profile, { recursive: true, force: true });
    profiles.delete(profile);
    throw new Error(`cannot launch ${CHROMIUM} (install Debian's chromium package, or set CHROMIUM_PATH): ${err.message}`);
  }
  const page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(10_000);
  return {
    context,
    page,
    async close() {
      try {
        await within(context.close(), 10_000, () => undefined);
      } finally {
        rmSync(profile, { recursive: true, force: true });
        profiles.delete(profile);
      }
    },
  };
}

/** What a card shows, read from the DOM in one go. */
export function readCard(page, key) {
  return page.evaluate((key) => {
    const card = document.querySelector(`[data-testid="card-${key}"]`);
    if (!card) return null;
    const q = (id) => card.querySelector(`[data-testid="${id}"]`);
    const lastId = q('last-id').textContent.trim();
    return {
      state: q('state').dataset.state,
      stateText: q('state').textContent.trim(),
      lastId: /^\d+$/.test(lastId) ? Number(lastId) : null,
      reconnects: Number(q('reconnects').textContent),
      health: q('health').textContent.trim(),
      entries: [...card.querySelectorAll('[data-testid="log-entry"]')].map((e) => ({
        event: e.dataset.event, id: e.dataset.id, data: e.querySelector('code')?.textContent ?? '', gap: e.classList.contains('gap'),
      })),
    };
  }, key);
}

/** Polls `check` (which returns a truthy value when done) until it passes or `timeout` ms pass. */
export async function waitUntil(check, { timeout = 10_000, interval = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() >= deadline) break;
    await sleep(Math.min(interval, Math.max(0, deadline - Date.now())));
  }
  throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
}

export { sleep };
