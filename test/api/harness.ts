/**
 * A real engine context over a real store (PostgreSQL or PGlite) with the API built on it, for
 * `app.inject()` tests. Three clients: `root` (admin), `acme` and `other`.
 */
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { pino } from 'pino';
import { buildServer } from '../../src/api/build-server.js';
import { loadConfig } from '../../src/config/load-config.js';
import type { EngineConfig } from '../../src/config/schema.js';
import { createClient } from '../../src/engine/clients/clients.js';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import { loadCatalog } from '../../src/workflows/catalog.js';
import { guardEngine } from '../helpers/engine.js';
import { createTestStore, type StoreKind, type TestStore } from '../helpers/stores.js';

/** The fixture workflows: common `greet`, and `private` for acme only. */
export const FIXTURE_WORKFLOWS = fileURLToPath(new URL('./fixtures/workflows/', import.meta.url));

/** Credentials of one test client. */
export interface TestClient {
  name: string;
  apiKey: string;
  headers: Record<string, string>;
}

/** The harness of one suite. */
export interface ApiHarness {
  store: TestStore;
  engine: Engine;
  app: FastifyInstance;
  config: EngineConfig;
  root: TestClient;
  acme: TestClient;
  other: TestClient;
  /** `app.inject` as `as` (or with no credentials when `as` is null). */
  call(
    as: TestClient | null,
    method: InjectOptions['method'],
    url: string,
    body?: unknown,
    extra?: Partial<InjectOptions>,
  ): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

/** Creates a store of `kind`, an engine context (not started) and the API. */
export async function createApiHarness(kind: StoreKind, roles = 'api'): Promise<ApiHarness> {
  const store = await createTestStore(kind);
  const config = loadConfig({
    TASK_ENGINE_ROLES: roles,
    TASK_ENGINE_WORKFLOWS_DIR: FIXTURE_WORKFLOWS,
    TASK_ENGINE_LOG_LEVEL: 'silent',
  });
  const catalog = await loadCatalog(FIXTURE_WORKFLOWS);
  const engine = guardEngine(
    await createEngine(config, { db: store.db, catalog, logger: pino({ level: 'silent' }) }),
    `API harness on ${kind}`,
  );
  const app = buildServer(engine.ctx);
  await app.ready();
  const make = async (name: string, admin: boolean): Promise<TestClient> => {
    const c = await createClient(store.db, { name, admin });
    return { name, apiKey: c.api_key, headers: { client: name, 'api-key': c.api_key } };
  };
  const root = await make('root', true);
  const acme = await make('acme', false);
  const other = await make('other', false);
  return {
    store,
    engine,
    app,
    config,
    root,
    acme,
    other,
    call(as, method, url, body, extra = {}) {
      const headers: Record<string, string> = {
        ...(as?.headers ?? {}),
        ...((extra.headers as Record<string, string>) ?? {}),
      };
      return app.inject({
        method,
        url,
        ...(body !== undefined ? { payload: body as InjectOptions['payload'] } : {}),
        ...extra,
        headers,
      });
    },
    async close() {
      await app.close();
      await engine.stop();
      await store.dispose();
    },
  };
}

/** The parsed JSON body of a reply, after checking that it is JSON. */
export function json<T = Record<string, unknown>>(res: LightMyRequestResponse): T {
  const type = String(res.headers['content-type'] ?? '');
  if (!type.startsWith('application/json'))
    throw new Error(`reply is not JSON (${type}): ${res.body.slice(0, 200)}`);
  return JSON.parse(res.body) as T;
}
