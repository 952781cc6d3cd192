/**
 * The operator console (docs/console.md): the files `npm run build:ui` writes to `dist/ui/`,
 * served at `/ui/`. The page and its scripts are public, like the API description: they hold no
 * data, and every request they make for data carries the signed-in client's credentials
 * (`Authorization: Bearer <client>:<api-key>`).
 *
 * `/ui` redirects to `/ui/`; a path under `/ui/` that names no file and has no extension is one of
 * the console's own pages (`/ui/jobs/42`) and gets `index.html`; a missing file with an extension
 * is a JSON 404. Without a built bundle, `/ui` and everything under it answer 503 saying how to
 * build it.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';

/**
 * Where the built console lives: `dist/ui/` of the package, found from this file both when it
 * runs from source (`src/api/routes/`) and compiled (`dist/api/routes/`).
 */
export const CONSOLE_DIR = fileURLToPath(new URL('../../../dist/ui/', import.meta.url));

/** Browsers may keep the hashed bundle files for ever; `index.html` is checked every time. */
function setCacheHeaders(reply: FastifyReply, file: string): void {
  const hashed = file.includes(`${path.sep}assets${path.sep}`);
  void reply.header('cache-control', hashed ? 'public, max-age=31536000, immutable' : 'no-cache');
  void reply.header('x-content-type-options', 'nosniff');
}

/**
 * Registers the console routes (all public) under `/ui`.
 * @param dir - the built bundle (default {@link CONSOLE_DIR}); tests pass another folder.
 */
export function registerConsoleRoutes(app: FastifyInstance, dir: string = CONSOLE_DIR): void {
  void app.register(
    async (ui) => {
      ui.addHook('onRoute', (route) => {
        route.config = { ...(route.config ?? {}), auth: 'public' };
      });
      if (!existsSync(path.join(dir, 'index.html'))) {
        const missing = async (_request: unknown, reply: FastifyReply) =>
          reply.code(503).send({
            error: `the console is not built: run "npm run build:ui" (it writes ${path.relative(process.cwd(), dir) || dir}), then restart the engine`,
          });
        ui.get('/', { prefixTrailingSlash: 'no-slash', schema: { hide: true } }, missing);
        ui.get('/*', { schema: { hide: true } }, missing);
        return;
      }
      ui.get('/', { prefixTrailingSlash: 'no-slash', schema: { hide: true } }, async (_request, reply) =>
        reply.redirect('/ui/', 302),
      );
      await ui.register(fastifyStatic, {
        root: dir,
        prefix: '/',
        wildcard: true,
        index: 'index.html',
        preCompressed: true,
        setHeaders: setCacheHeaders,
      });
      // A console page (`/ui/jobs/42`): the browser-side router draws it from index.html.
      ui.setNotFoundHandler(async (request, reply) => {
        const last = (request.url.split('?')[0] ?? '').split('/').pop() ?? '';
        if ((request.method === 'GET' || request.method === 'HEAD') && !last.includes('.')) {
          void reply.header('cache-control', 'no-cache');
          return reply.sendFile('index.html');
        }
        return reply
          .code(404)
          .type('application/json')
          .send({ error: `no console file ${(request.url.split('?')[0] ?? '').slice(0, 200)}` });
      });
    },
    { prefix: '/ui' },
  );
}
