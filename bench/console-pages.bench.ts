/**
 * `npm run bench console-pages`: how long the console's Overview and Queue pages take, in Debian's
 * Chromium (playwright-core, no browser download), from navigation to their data drawn, on a kept
 * database (BENCH_DATABASE_URL, e.g. the one `BENCH_KEEP=1 npm run bench list-jobs` leaves: 1,000,000
 * jobs and 100,000 queued). The engine runs in this process with the `api` role (nothing admits),
 * serving `dist/ui` (`npm run build:ui` first). BENCH_RUNS loads per page (default 5), after one
 * warm-up; prints each time and the median.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import pino from 'pino';
import { buildServer } from '../src/api/build-server.js';
import { loadConfig } from '../src/config/load-config.js';
import { createClient } from '../src/engine/clients/clients.js';
import { createEngine } from '../src/engine/engine.js';
import { openStore } from '../src/store/open-store.js';
import { loadCatalog } from '../src/workflows/catalog.js';

const url = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/te_bench';
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const WORKFLOWS = fileURLToPath(new URL('../workflows/', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** The pages and the selector that shows their data drawn. */
const PAGES: [string, string, string][] = [
  ['Overview', '/ui/', '[data-testid=slots]'],
  // BENCH_QUEUE_SELECTOR: for a console before the virtualised Queue page, `#list-queued tr[data-job]`.
  ['Queue', '/ui/queue', process.env.BENCH_QUEUE_SELECTOR ?? '#list-queued .qrow[data-job]'],
];

async function main(): Promise<void> {
  const db = await openStore({ databaseUrl: url });
  const config = loadConfig({
    TASK_ENGINE_ROLES: 'api',
    TASK_ENGINE_WORKFLOWS_DIR: WORKFLOWS,
    TASK_ENGINE_LOG_LEVEL: 'silent',
  });
  const engine = await createEngine(config, {
    db,
    catalog: await loadCatalog(WORKFLOWS),
    logger: pino({ level: 'silent' }),
  });
  const app = buildServer(engine.ctx);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('the server has no port');
  const base = `http://127.0.0.1:${address.port}`;
  await db.query('DELETE FROM clients WHERE name = $1', ['bench-console']);
  const admin = await createClient(db, { name: 'bench-console', admin: true });
  const session = JSON.stringify({ client: 'bench-console', apiKey: admin.api_key, admin: true });
  const context = await chromium.launchPersistentContext(mkdtempSync(path.join(tmpdir(), 'te-chromium-')), {
    executablePath: CHROMIUM,
    headless: true,
    chromiumSandbox: false,
    viewport: { width: 1360, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
    ],
  });
  try {
    await context.addInitScript((s: string) => {
      (
        globalThis as unknown as { sessionStorage: { setItem(k: string, v: string): void } }
      ).sessionStorage.setItem('task-engine.console.session', s);
    }, session);
    const page = await context.newPage();
    page.setDefaultTimeout(60_000);
    const { rows } = await db.query<{ n: string }>(
      "SELECT sum(n) AS n FROM job_state_counts WHERE queue_state = 'queued'",
    );
    console.log(
      `console-pages: ${rows[0]!.n} queued in ${new URL(url).pathname.slice(1)}; ${RUNS} loads per page`,
    );
    for (const [name, route, selector] of PAGES) {
      const times: number[] = [];
      for (let i = 0; i <= RUNS; i++) {
        await page.goto('about:blank');
        const start = Date.now();
        await page.goto(base + route);
        await page.locator(selector).first().waitFor();
        if (i > 0) times.push(Date.now() - start);
      }
      times.sort((a, b) => a - b);
      console.log(
        `${name.padEnd(10)} median ${times[Math.floor(times.length / 2)]} ms; all ${times.join(', ')} ms`,
      );
    }
  } finally {
    await context.close();
    await app.close();
    await engine.stop();
    await db.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
