// `npm ci` / `npm install` (the `prepare` script): builds the console into dist/ui/ so that a
// fresh clone serves it at /ui. An install without the development dependencies (no Vite) skips
// the build and says so; the engine then answers /ui with a 503 naming `npm run build:ui`.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
try {
  require.resolve('vite/package.json');
} catch {
  console.log('console not built: Vite is not installed (run "npm run build:ui" after installing it)');
  process.exit(0);
}
const npm = process.env.npm_execpath;
const res = npm
  ? spawnSync(process.execPath, [npm, 'run', 'build:ui'], { stdio: 'inherit' })
  : spawnSync('npm', ['run', 'build:ui'], { stdio: 'inherit', shell: process.platform === 'win32' });
process.exit(res.status ?? 1);
