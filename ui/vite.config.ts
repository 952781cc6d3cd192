// Builds the operator console (ui/src, Preact + TypeScript) into dist/ui/, which the engine serves
// at /ui/ (src/api/routes/console.ts). `npm run build:ui`; `npm ci` runs it through `prepare`.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

const here = (p: string): string => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  root: here('./'),
  base: '/ui/',
  plugins: [preact({ devtoolsInProd: false, prefreshEnabled: false })],
  build: {
    outDir: here('../dist/ui'),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    reportCompressedSize: true,
    chunkSizeWarningLimit: 200,
  },
  // `vite dev`: the API of an engine on :3000, so the console can be worked on with reloads.
  server: {
    proxy: Object.fromEntries(
      ['/health', '/dashboard', '/job', '/jobs', '/logs', '/events', '/schedules', '/scheduler', '/settings', '/workflows', '/clients', '/stats'].map(
        (p) => [p, 'http://127.0.0.1:3000'],
      ),
    ),
  },
});
