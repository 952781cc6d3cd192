/**
 * The rig of the console's browser tests: a whole engine (API on a free port, controller, worker,
 * scheduler) on embedded PGlite with the bundled workflows and an admin client `root`, the console
 * built from `ui/` when the bundle is missing or older than its sources, and Debian's Chromium
 * driven by playwright-core (no browser download), one per test file, with a fresh profile.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { startTaskEngine, type RunningTaskEngine } from '../../src/server.js';
import { testConfig } from '../helpers/engine.js';
import { trackRunning } from '../helpers/leak-guard.js';
import { createTestStore, type TestStore } from '../helpers/stores.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BUNDLE = path.join(ROOT, 'dist/ui/index.html');
/** Where the screenshots go (gitignored). */
export const SHOTS = path.join(ROOT, 'test-output/ui');
/** Debian's Chromium (`apt-get install chromium`; `.ci/run` installs it). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** A client's credentials. */
export interface Credentials {
  client: string;
  apiKey: string;
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    const st = statSync(p);
    newest = Math.max(newest, st.isDirectory() ? newestMtime(p) : st.mtimeMs);
  }
  return newest;
}

/** Builds the console (`npm run build:ui`) unless dist/ui is newer than every file under ui/. */
export function ensureConsoleBuilt(): void {
  if (existsSync(BUNDLE) && statSync(BUNDLE).mtimeMs >= newestMtime(path.join(ROOT, 'ui'))) return;
  const vite = path.join(ROOT, 'node_modules/vite/bin/vite.js');
  const res = spawnSync(
    process.execPath,
    [vite, 'build', '--config', 'ui/vite.config.ts', '--logLevel', 'warn'],
    {
      cwd: ROOT,
      encoding: 'utf8',
    },
  );
  if (res.status !== 0) throw new Error(`npm run build:ui failed:\n${res.stdout}\n${res.stderr}`);
}

/** The running engine, its admin and the browser. */
export interface ConsoleRig {
  url: string;
  store: TestStore;
  engine: RunningTaskEngine;
  admin: Credentials;
  context: BrowserContext;
  /** Calls the API as `as`; throws on a non-2xx reply with its error text. */
  api<T = Record<string, unknown>>(as: Credentials, method: string, url: string, body?: unknown): Promise<T>;
  /** A new tab (its own sessionStorage, so signed out) showing `/ui`. */
  newPage(): Promise<Page>;
  /** Signs `page` in through the sign-in form. */
  signIn(page: Page, as: Credentials): Promise<void>;
  /** Saves a full-page screenshot as `test-output/ui/<name>.png` (and to `also`, when given). */
  shot(page: Page, name: string, also?: string): Promise<void>;
  close(): Promise<void>;
}

/** Starts the rig; `close()` it in the suite's `after`. */
export async function startConsoleRig(): Promise<ConsoleRig> {
  ensureConsoleBuilt();
  mkdirSync(SHOTS, { recursive: true });
  const store = await createTestStore('pglite');
  const admin = { client: 'root', apiKey: randomBytes(32).toString('base64url') };
  const config = testConfig({
    roles: ['api', 'controller', 'worker', 'scheduler'],
    adminClient: admin.client,
    adminApiKey: admin.apiKey,
    workerConcurrency: 4,
  });
  const engine = await startTaskEngine(config, { db: store.db, logger: pino({ level: 'silent' }) });
  const untrackEngine = trackRunning('engine', 'console test engine', () => engine.stop());
  const url = engine.url!;
  const profile = mkdtempSync(path.join(tmpdir(), 'te-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    chromiumSandbox: false,
    viewport: { width: 1360, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const untrackBrowser = trackRunning('child process', `chromium (${profile})`, () => context.close());
  context.setDefaultTimeout(30_000);

  const api: ConsoleRig['api'] = async <T>(as: Credentials, method: string, u: string, body?: unknown) => {
    const res = await fetch(`${url}${u}`, {
      method,
      headers: {
        authorization: `Bearer ${as.client}:${as.apiKey}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${u}: ${res.status} ${text}`);
    return JSON.parse(text) as T;
  };

  return {
    url,
    store,
    engine,
    admin,
    context,
    api,
    async newPage() {
      const page = await context.newPage();
      await page.goto(`${url}/ui`);
      return page;
    },
    async signIn(page, as) {
      await page.fill('input[name=client]', as.client);
      await page.fill('input[name=api-key]', as.apiKey);
      await page.click('button[type=submit]');
      await page.waitForSelector('header.top [data-testid=who]');
    },
    async shot(page, name, also) {
      const file = path.join(SHOTS, `${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      if (also) await page.screenshot({ path: also, fullPage: true });
    },
    async close() {
      try {
        await context.close();
      } finally {
        untrackBrowser();
        rmSync(profile, { recursive: true, force: true });
        await engine.stop();
        untrackEngine();
        await store.dispose();
      }
    },
  };
}
