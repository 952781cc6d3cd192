/**
 * `npm run bench [name …]`: runs every `bench/*.bench.ts` (or those named) one after another, each
 * in its own process, and prints what each reports. Figures go into bench/RESULTS.md by hand,
 * with the machine and the command.
 */
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const dir = path.dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2);
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => wanted.length === 0 || wanted.some((w) => f.startsWith(w)))
  .sort();
if (files.length === 0) {
  console.error(
    `no benchmark matches ${wanted.join(', ')}; available: ${readdirSync(dir)
      .filter((f) => f.endsWith('.bench.ts'))
      .join(', ')}`,
  );
  process.exit(2);
}
let failed = 0;
for (const f of files) {
  console.log(`\n=== ${f}`);
  const res = spawnSync(process.execPath, ['--import', 'tsx', path.join(dir, f)], {
    stdio: 'inherit',
    env: process.env,
  });
  if (res.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
