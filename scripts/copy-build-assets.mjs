// After `tsc`, copies the files the compiled engine reads at run time (the SQL migrations) from
// src/ to dist/, keeping their paths, and marks the CLI entry point executable.
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const ASSET = /\.(sql)$/;
let copied = 0;
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (ASSET.test(name)) {
      const target = join('dist', relative('src', p));
      mkdirSync(dirname(target), { recursive: true });
      copyFileSync(p, target);
      copied++;
    }
  }
};
walk('src');
if (existsSync('dist/cli/main.js')) chmodSync('dist/cli/main.js', 0o755);
console.log(`copied ${copied} build asset(s) to dist/`);
