/**
 * Bodies whose meaning JSON.parse would silently change, and numbers sent as strings (SPEC
 * section 4), through HTTP on both stores with the bundled workflows: a repeated key and an
 * integer beyond 2^53 - 1 are 400s naming the path, a default built from a parameter not given is
 * a 400 at submission, and numeric strings are read as numbers for priority and for parameters
 * alike. A refused request writes nothing.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { pino } from 'pino';
import { buildServer } from '../../src/api/build-server.js';
import { scanJsonText } from '../../src/api/plugins/input-guard.js';
import { loadConfig } from '../../src/config/load-config.js';
import { createClient } from '../../src/engine/clients/clients.js';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import { loadCatalog } from '../../src/workflows/catalog.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';

forEachStore('API: JSON edge cases and numeric strings', (kind) => {
  let store: TestStore;
  let engine: Engine;
  let app: FastifyInstance;
  let headers: Record<string, string>;

  before(async () => {
    store = await createTestStore(kind);
    const config = loadConfig({ TASK_ENGINE_ROLES: 'api', TASK_ENGINE_LOG_LEVEL: 'silent' });
    const catalog = await loadCatalog(config.workflowsDir);
    engine = await createEngine(config, { db: store.db, catalog, logger: pino({ level: 'silent' }) });
    app = buildServer(engine.ctx);
    await app.ready();
    const c = await createClient(store.db, { name: 'acme', admin: true });
    headers = { client: 'acme', 'api-key': c.api_key, 'content-type': 'application/json' };
  });
  after(async () => {
    await app.close();
    await engine.stop();
    await store.dispose();
  });

  const jobCount = async (): Promise<number> =>
    (await store.db.query<{ n: number }>('SELECT count(*)::int AS n FROM jobs')).rows[0]!.n;
  const post = (url: string, payload: string): Promise<LightMyRequestResponse> =>
    app.inject({ method: 'POST', url, headers, payload });
  /** Sends `payload`, expects a 400 whose message matches, and checks that no job was written. */
  const refused = async (payload: string, message: RegExp): Promise<string> => {
    const before = await jobCount();
    const res = await post('/job', payload);
    assert.equal(res.statusCode, 400, res.body);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    const { error } = JSON.parse(res.body) as { error: string };
    assert.match(error, message);
    assert.equal(await jobCount(), before, 'no job was written');
    return error;
  };
  const thumbs = (parameters: string, job = '{"workflow":"build_thumbnails"}'): string =>
    `{"job":${job},"parameters":${parameters}}`;

  void test('a body that repeats a key, at any depth, is a 400 naming the key and its path', async () => {
    await refused(
      thumbs('{"content_id":"c1","source":"in/a.mp4"}', '{"workflow":"build_thumbnails","workflow":"demo"}'),
      /repeats the key "workflow" at body\.job\.workflow; send each key once per object/,
    );
    await refused(
      thumbs('{"content_id":"c1","source":"in/a.mp4","custom_data":{"a":[{"k":1,"k":2}]}}'),
      /repeats the key "k" at body\.parameters\.custom_data\.a\[0\]\.k/,
    );
    await refused(
      `{"job":{"workflow":"build_thumbnails"},"parameters":{"content_id":"c1","source":"in/a.mp4"},"parameters":{"content_id":"c2","source":"in/a.mp4"}}`,
      /repeats the key "parameters" at body\.parameters/,
    );
    await refused(
      thumbs('{"content_id":"c1","\\u0063ontent_id":"c2","source":"in/a.mp4"}'),
      /repeats the key "content_id"/,
    );
  });

  void test('a body nested deeper than 100 levels is a 400 that says so, without the advice about NUL', async () => {
    const error = await refused(
      thumbs(`{"content_id":"c1","source":"in/a.mp4","custom_data":${'['.repeat(150)}${']'.repeat(150)}}`),
      /is nested deeper than 100 levels; send objects and arrays at most 100 levels deep$/,
    );
    assert.doesNotMatch(error, /NUL/);
    await refused(
      thumbs('{"content_id":"c\\u0000","source":"in/a.mp4"}'),
      /NUL character.*; send valid UTF-8 text without NUL$/,
    );
  });

  void test('a number literal beyond the range of a double (1e400) is named as such, not as null', async () => {
    const error = await refused(
      thumbs('{"content_id":"c1","source":"in/a.mp4"}', '{"workflow":"build_thumbnails","priority":1e400}'),
      /job\.priority must be a whole number from 1 to 10 .*got Infinity \(a number literal beyond the range of a double/,
    );
    assert.doesNotMatch(error, /got null/);
  });

  void test('a repeated key is refused on every route with a body, not only POST /job', async () => {
    const res = await post('/settings', '{"name":"max_jobs","setting":"3","setting":"1"}');
    assert.equal(res.statusCode, 400, res.body);
    assert.match(res.body, /repeats the key \\"setting\\" at body\.setting/);
  });

  void test('an integer beyond 2^53 - 1 is a 400 naming the field, not rounded', async () => {
    await refused(
      thumbs('{"content_id":"c1","source":"in/a.mp4","custom_data":{"asset_id":3544790567247868102}}'),
      /^body\.parameters\.custom_data\.asset_id is 3544790567247868102, an integer beyond ±9007199254740991/,
    );
    await refused(
      thumbs('{"content_id":"c1","source":"in/a.mp4","thumbnail_width":-9007199254740993}'),
      /body\.parameters\.thumbnail_width is -9007199254740993/,
    );
    // The digits survive as a string, where the schema takes one.
    const res = await post(
      '/job',
      thumbs('{"content_id":"c1","source":"in/a.mp4","custom_data":{"asset_id":"3544790567247868102"}}'),
    );
    assert.equal(res.statusCode, 200, res.body);
    const { id } = JSON.parse(res.body) as { id: number };
    const job = await app.inject({ method: 'GET', url: `/jobs/${id}`, headers });
    assert.match(job.body, /"asset_id":"3544790567247868102"/);
  });

  void test('a default built from a parameter not given is a 400 at submission, naming both', async () => {
    const error = await refused(thumbs('{"source":"in/a.mp4"}'), /output_folder/);
    assert.equal(
      error,
      'parameters are not valid for workflow "build_thumbnails": parameters.output_folder has no value: its default "{content_id}" is built from parameters.content_id, which was not given; give content_id or output_folder; ' +
        'parameters.filename_prefix has no value: its default "{content_id}" is built from parameters.content_id, which was not given; give content_id or filename_prefix',
    );
    const given = await post(
      '/job',
      thumbs('{"source":"in/a.mp4","output_folder":"out","filename_prefix":"p"}'),
    );
    assert.equal(given.statusCode, 200, given.body);
    // createmp4 names its MP4 after the master playlist without content_id: no reference default there.
    const mp4 = await post('/job', '{"job":{"workflow":"createmp4"},"parameters":{"source_folder":"vod/a"}}');
    assert.equal(mp4.statusCode, 200, mp4.body);
  });

  void test('numeric strings are read as numbers for priority and numeric parameters alike', async () => {
    const res = await post(
      '/job',
      thumbs(
        '{"content_id":"c1","source":"in/a.mp4","thumbnail_width":"200","preview_thumbnails_interval":" 2.5 "}',
        '{"workflow":"build_thumbnails","priority":"2"}',
      ),
    );
    assert.equal(res.statusCode, 200, res.body);
    const { id } = JSON.parse(res.body) as { id: number };
    const { rows } = await store.db.query<{ priority: number; resolved: Record<string, unknown> }>(
      'SELECT priority, resolved_parameters AS resolved FROM jobs WHERE id = $1',
      [id],
    );
    assert.equal(rows[0]!.priority, 2);
    assert.equal(rows[0]!.resolved.thumbnail_width, 200);
    assert.equal(rows[0]!.resolved.preview_thumbnails_interval, 2.5);
    // The same grammar and the same refusals on both.
    for (const [field, value] of [
      ['priority', '"2.0"'],
      ['priority', '"+3"'],
    ] as const) {
      const ok = await post(
        '/job',
        thumbs(
          '{"content_id":"c1","source":"in/a.mp4"}',
          `{"workflow":"build_thumbnails","${field}":${value}}`,
        ),
      );
      assert.equal(ok.statusCode, 200, `${field} ${value}: ${ok.body}`);
      const okParam = await post(
        '/job',
        thumbs(`{"content_id":"c1","source":"in/a.mp4","thumbnail_width":${value.replace(/[23]/, '200')}}`),
      );
      assert.equal(okParam.statusCode, 200, `thumbnail_width ${value}: ${okParam.body}`);
    }
    await refused(
      thumbs('{"content_id":"c1","source":"in/a.mp4"}', '{"workflow":"build_thumbnails","priority":"2.5"}'),
      /priority must be a whole number/,
    );
    await refused(
      thumbs('{"content_id":"c1","source":"in/a.mp4","thumbnail_width":"200.5"}'),
      /thumbnail_width must be integer \(got string "200\.5"/,
    );
    await refused(
      thumbs('{"content_id":"c1","source":"in/a.mp4"}', '{"workflow":"build_thumbnails","priority":"0x2"}'),
      /priority must be a whole number/,
    );
    await refused(
      thumbs('{"content_id":"c1","source":"in/a.mp4","thumbnail_width":"0xC8"}'),
      /thumbnail_width must be integer/,
    );
    await refused(
      thumbs('{"content_id":"c1","source":"in/a.mp4","thumbnail_width":"3544790567247868102"}'),
      /thumbnail_width is "3544790567247868102", a whole number beyond/,
    );
  });
  void test('a refused request is logged as one JSON line without a repeated key', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const config = loadConfig({ TASK_ENGINE_ROLES: 'api', TASK_ENGINE_LOG_LEVEL: 'info' });
    const logged = await createEngine(config, {
      db: store.db,
      catalog: await loadCatalog(config.workflowsDir),
      logger,
    });
    const server = buildServer(logged.ctx);
    try {
      await server.ready();
      const res = await server.inject({ method: 'POST', url: '/job', headers, payload: '{"job":{}}' });
      assert.equal(res.statusCode, 400, res.body);
      const refusal = lines.find((l) => l.includes('request refused'));
      assert.ok(refusal, lines.join(''));
      assert.equal(scanJsonText(refusal), null, refusal);
      assert.equal((JSON.parse(refusal) as { msg: string }).msg, 'request refused');
    } finally {
      await server.close();
      await logged.stop();
    }
  });
});
