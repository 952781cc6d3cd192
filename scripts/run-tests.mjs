// Finds every *.test.ts under src/ and test/ and runs them with node's test runner through tsx.
// Extra arguments narrow the run: `npm test -- test/api` runs only files under that path.
// Every file also loads test/helpers/leak-guard.ts, which fails a file whose tests leave an engine,
// an engine process or a child process running.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const leakGuard = fileURLToPath(new URL('../test/helpers/leak-guard.ts', import.meta.url));

const roots = process.argv.slice(2).length ? process.argv.slice(2) : ['src', 'test'];
const files = [];
const walk = (p) => {
  const st = statSync(p);
  if (st.isDirectory()) {
    if (p.includes('node_modules')) return;
    for (const f of readdirSync(p)) walk(join(p, f));
  } else if (p.endsWith('.test.ts')) files.push(p);
};
for (const r of roots) walk(r);
files.sort();
if (files.length === 0) {
  console.error('no test files found under', roots.join(', '));
  process.exit(1);
}
const concurrency = process.env.TEST_CONCURRENCY ?? '2';
const res = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--import', leakGuard, '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files],
  { stdio: 'inherit' },
);
process.exit(res.status ?? 1);
