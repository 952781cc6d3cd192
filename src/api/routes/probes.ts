/**
 * Probes for orchestrators, without credentials (docs/observability.md):
 * - `GET /livez` — 200 `{"status": "ok"}` whenever the process's event loop runs (it answers at
 *   all); it reads nothing, so a database outage never restarts the process.
 * - `GET /readyz` — 200 `{"status": "ok"}` only when the database answers within
 *   {@link READY_TIMEOUT_MS} and every migration this build ships is applied; else 503
 *   `{"error": <reason>, "status": "unavailable", "checks": {...}}`.
 */
import type { FastifyInstance } from 'fastify';
import type { EngineContext } from '../../engine/context.js';
import { readAppliedMigrations, readMigrations } from '../../store/migrate.js';

/** How long `/readyz` waits for the database (ms). */
export const READY_TIMEOUT_MS = 2_000;

/** The outcome of the readiness checks. */
export interface Readiness {
  ready: boolean;
  reason: string | null;
  checks: {
    database: 'ok' | 'unavailable';
    migrations: 'ok' | 'pending' | 'unknown';
    database_ms: number | null;
  };
}

/** Rejects after `ms` with "timed out" (the timer does not keep the process alive). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Checks readiness: one read of `schema_migrations` (a round trip that also proves the database
 * answers), compared with the migrations this build ships (read from disk once).
 * Never throws.
 */
export function createReadinessCheck(ctx: EngineContext): () => Promise<Readiness> {
  let shipped: Promise<number[]> | null = null;
  return async () => {
    shipped ??= readMigrations().then((ms) => ms.map((m) => m.version));
    const t0 = performance.now();
    let applied: Set<number>;
    try {
      const rows = await within(readAppliedMigrations(ctx.db), READY_TIMEOUT_MS, 'the database');
      applied = new Set(rows.map((r) => r.version));
    } catch (err) {
      return {
        ready: false,
        reason: `database: ${(err as Error).message}`,
        checks: { database: 'unavailable', migrations: 'unknown', database_ms: null },
      };
    }
    const ms = Math.round((performance.now() - t0) * 10) / 10;
    const missing = (await shipped).filter((v) => !applied.has(v));
    if (missing.length > 0)
      return {
        ready: false,
        reason: `migrations not applied: ${missing.join(', ')} (run task-engine migrate)`,
        checks: { database: 'ok', migrations: 'pending', database_ms: ms },
      };
    return { ready: true, reason: null, checks: { database: 'ok', migrations: 'ok', database_ms: ms } };
  };
}

const probeReply = {
  type: 'object',
  properties: {
    status: { type: 'string' },
    error: { type: 'string' },
    checks: { type: 'object', additionalProperties: true },
  },
} as const;

/** Registers `GET /livez` and `GET /readyz` (public). */
export function registerProbeRoutes(app: FastifyInstance, ctx: EngineContext): void {
  const readiness = createReadinessCheck(ctx);
  app.get(
    '/livez',
    {
      config: { auth: 'public' },
      schema: {
        summary: 'Liveness: the process runs',
        tags: ['status'],
        security: [],
        response: { 200: probeReply },
      },
    },
    async () => ({ status: 'ok' }),
  );
  app.get(
    '/readyz',
    {
      config: { auth: 'public' },
      schema: {
        summary: 'Readiness: the database answers and the migrations are applied',
        tags: ['status'],
        security: [],
        response: { 200: probeReply, 503: probeReply },
      },
    },
    async (_request, reply) => {
      const r = await readiness();
      if (r.ready) return { status: 'ok', checks: r.checks };
      return reply.code(503).send({ error: r.reason, status: 'unavailable', checks: r.checks });
    },
  );
}
