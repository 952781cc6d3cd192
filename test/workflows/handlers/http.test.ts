import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { PermanentTaskError, RetryAfterError } from '../../../src/errors/task-errors.js';
import { httpHandler } from '../../../src/workflows/handlers/http.js';
import { makeHandlerContext, type TestHandlerContext } from '../handler-context.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

describe('http handler', () => {
  let server: Server;
  let base: string;
  const seen: Seen[] = [];
  const contexts: TestHandlerContext[] = [];
  const context = async (inputs: Record<string, unknown>): Promise<TestHandlerContext> => {
    const c = await makeHandlerContext(inputs);
    contexts.push(c);
    return c;
  };

  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        const path = (req.url ?? '').split('?')[0] ?? '';
        switch (path) {
          case '/json':
            res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'x-test': 'yes' });
            res.end(JSON.stringify({ ok: true, items: [1, 2] }));
            return;
          case '/echo':
            res.writeHead(201, { 'content-type': 'application/json' });
            res.end(
              JSON.stringify({ method: req.method, body: body ? (JSON.parse(body) as unknown) : null }),
            );
            return;
          case '/text':
            res.writeHead(200, { 'content-type': 'text/plain' });
            res.end('plain words');
            return;
          case '/missing':
            res.writeHead(404, { 'content-type': 'text/plain' });
            res.end('nothing here');
            return;
          case '/broken':
            res.writeHead(500);
            res.end('boom');
            return;
          case '/busy':
            res.writeHead(429, { 'retry-after': '7' });
            res.end();
            return;
          case '/slow':
            setTimeout(() => {
              res.writeHead(200);
              res.end('late');
            }, 3000).unref();
            return;
          default:
            res.writeHead(400);
            res.end();
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await Promise.all(contexts.map((c) => c.cleanup()));
  });

  it('GETs and parses a JSON body, with status and lower-case headers', async () => {
    const { ctx } = await context({ url: `${base}/json` });
    const out = await httpHandler(ctx);
    assert.equal(out.status, 200);
    assert.deepEqual(out.body, { ok: true, items: [1, 2] });
    assert.equal(out.headers['x-test'], 'yes');
  });

  it('POSTs json with a content-type and custom headers', async () => {
    const { ctx } = await context({
      method: 'post',
      url: `${base}/echo`,
      json: { id: 5 },
      headers: { 'x-job': 5 },
    });
    const out = await httpHandler(ctx);
    assert.equal(out.status, 201);
    assert.deepEqual(out.body, { method: 'POST', body: { id: 5 } });
    const req = seen.at(-1)!;
    assert.equal(req.headers['content-type'], 'application/json');
    assert.equal(req.headers['x-job'], '5');
  });

  it('keeps a non-JSON body as text', async () => {
    const { ctx } = await context({ url: `${base}/text` });
    assert.equal((await httpHandler(ctx)).body, 'plain words');
  });

  it('accepts a status listed in expect', async () => {
    const { ctx } = await context({ url: `${base}/missing`, expect: [404, '2xx'] });
    assert.equal((await httpHandler(ctx)).status, 404);
  });

  it('fails permanently on an unexpected 4xx, naming the status', async () => {
    const { ctx } = await context({ url: `${base}/missing?token=secret` });
    await assert.rejects(httpHandler(ctx), (err: Error) => {
      assert.ok(err instanceof PermanentTaskError);
      assert.match(
        err.message,
        /GET http:\/\/127\.0\.0\.1:\d+\/missing answered 404, expected 2xx: nothing here/,
      );
      assert.doesNotMatch(err.message, /secret/);
      return true;
    });
  });

  it('fails retryably on 5xx, and with retry-after on 429', async () => {
    const a = await context({ url: `${base}/broken` });
    await assert.rejects(httpHandler(a.ctx), (err: Error) => {
      assert.ok(!(err instanceof PermanentTaskError));
      assert.match(err.message, /answered 500/);
      return true;
    });
    const b = await context({ url: `${base}/busy` });
    await assert.rejects(httpHandler(b.ctx), (err: Error) => {
      assert.ok(err instanceof RetryAfterError);
      assert.equal(err.retryAfterSeconds, 7);
      return true;
    });
  });

  it('times out after `timeout` seconds', async () => {
    const { ctx } = await context({ url: `${base}/slow`, timeout: 0.3 });
    const started = Date.now();
    await assert.rejects(httpHandler(ctx), /timed out after 0.3 s/);
    assert.ok(Date.now() - started < 2000);
  });

  it('stops when the attempt is aborted', async () => {
    const { ctx, controller } = await context({ url: `${base}/slow` });
    const run = httpHandler(ctx);
    setTimeout(() => controller.abort(new Error('job broken')), 100);
    await assert.rejects(run, /was stopped: job broken/);
  });

  it('fails retryably when nothing listens', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const { ctx } = await context({ url: `http://127.0.0.1:${port}/x`, timeout: 5 });
    await assert.rejects(httpHandler(ctx), (err: Error) => {
      assert.ok(!(err instanceof PermanentTaskError));
      assert.match(err.message, /failed: ECONNREFUSED/);
      return true;
    });
  });

  it('rejects bad inputs permanently', async () => {
    for (const [inputs, pattern] of [
      [{}, /"url" is required/],
      [{ url: 'file:///etc/passwd' }, /must use http or https/],
      [{ url: `${base}/json`, method: 'TRACE' }, /"method" must be one of/],
      [{ url: `${base}/json`, json: {}, body: 'x' }, /either "json" or "body"/],
      [{ url: `${base}/json`, expect: ['ok'] }, /"expect" must list statuses/],
      [{ url: `${base}/json`, timeout: -1 }, /"timeout" must be a number of seconds/],
    ] as const) {
      const { ctx } = await context(inputs);
      await assert.rejects(
        httpHandler(ctx),
        (err: Error) => err instanceof PermanentTaskError && pattern.test(err.message),
      );
    }
  });
});
