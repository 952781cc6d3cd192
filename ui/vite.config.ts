// Builds the operator console (ui/src, Preact + TypeScript) into dist/ui/, which the engine serves
// at /ui/ (src/api/routes/console.ts). `npm run build:ui`; `npm ci` runs it through `prepare`.
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { defineConfig, type Plugin } from 'vite';
import preact from '@preact/preset-vite';

const here = (p: string): string => fileURLToPath(new URL(p, import.meta.url));
const OUT = here('../dist/ui');

/**
 * Writes `<file>.br` and `<file>.gz` beside every text file of the bundle, which the engine sends
 * to browsers that accept them (@fastify/static `preCompressed`), so nothing is compressed per request.
 */
function precompress(): Plugin {
  return {
    name: 'task-engine-precompress',
    apply: 'build',
    closeBundle() {
      const walk = (dir: string): string[] =>
        readdirSync(dir).flatMap((f) => {
          const p = join(dir, f);
          return statSync(p).isDirectory() ? walk(p) : [p];
        });
      for (const file of walk(OUT)) {
        if (!/\.(js|css|html|svg|json)$/.test(file)) continue;
        const body = readFileSync(file);
        if (body.length < 1024) continue;
        writeFileSync(`${file}.gz`, gzipSync(body, { level: 9 }));
        writeFileSync(
          `${file}.br`,
          brotliCompressSync(body, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }),
        );
      }
    },
  };
}

export default defineConfig({
  root: here('./'),
  base: '/ui/',
  plugins: [preact({ devtoolsInProd: false, prefreshEnabled: false }), precompress()],
  build: {
    outDir: OUT,
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    reportCompressedSize: true,
    chunkSizeWarningLimit: 200,
  },
  // `vite dev`: the API of an engine on :3000, so the console can be worked on with reloads.
  server: {
    proxy: Object.fromEntries(
      [
        '/health',
        '/dashboard',
        '/job',
        '/jobs',
        '/logs',
        '/events',
        '/schedules',
        '/scheduler',
        '/settings',
        '/workflows',
        '/clients',
        '/stats',
      ].map((p) => [p, 'http://127.0.0.1:3000']),
    ),
  },
});
