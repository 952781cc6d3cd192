/**
 * Egress rules (`TASK_ENGINE_EGRESS`): the rules themselves, the guarded fetch (every connection
 * and every redirect hop checked), a 400 at submission for a refused callback target or semaphore,
 * and a refusal logged at delivery and in an `http` task — on both stores.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { createGuardedFetch, checkEgressUrl } from '../../src/engine/egress/guarded-fetch.js';
import { parseEgressRules, refuseAddress, refuseHost } from '../../src/engine/egress/rules.js';
import { submitJob } from '../../src/engine/jobs/service.js';
import { createCronSchedule } from '../../src/engine/scheduler/cron-schedules.js';
import { startCallbackReceiver, type CallbackReceiver } from '../helpers/callback-receiver.js';
import { startTestEngine, TEST_CLIENT, type TestEngine } from '../helpers/engine.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

/** A local server: `/ok` answers 200, `/to?u=<url>` redirects there. */
async function startRedirector(): Promise<{ url: string; close: () => Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    if (u.pathname === '/to') res.writeHead(302, { location: u.searchParams.get('u') ?? '/' }).end();
    else res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('egress rules', () => {
  it('always refuses link-local and metadata addresses, in every spelling', () => {
    const open = parseEgressRules('');
    for (const ip of [
      '169.254.169.254',
      '169.254.0.1',
      '::ffff:169.254.169.254',
      'fe80::1',
      'fd00:ec2::254',
      '0.0.0.0',
      '100.100.100.200',
      '224.0.0.1',
    ])
      assert.match(refuseAddress(open, ip) ?? '', /never reachable/, ip);
    for (const ip of ['127.0.0.1', '10.1.2.3', '192.168.1.1', '8.8.8.8', '::1'])
      assert.equal(refuseAddress(open, ip), null, `${ip} is allowed by default`);
    const everything = parseEgressRules('allow-cidr=169.254.0.0/16');
    assert.match(
      refuseAddress(everything, '169.254.169.254') ?? '',
      /never/,
      'allow-cidr cannot open the metadata range',
    );
  });

  it('refuses private and loopback ranges on request, with allow-cidr exceptions', () => {
    const strict = parseEgressRules('deny-private, deny-loopback, allow-cidr=10.9.0.0/16');
    assert.match(refuseAddress(strict, '10.1.2.3') ?? '', /private address.*deny-private/);
    assert.match(refuseAddress(strict, '172.20.0.1') ?? '', /private/);
    assert.match(refuseAddress(strict, 'fd12::1') ?? '', /private/);
    assert.match(refuseAddress(strict, '127.0.0.1') ?? '', /loopback/);
    assert.match(refuseAddress(strict, '::ffff:127.0.0.1') ?? '', /loopback/);
    assert.equal(refuseAddress(strict, '10.9.4.4'), null);
    assert.equal(refuseAddress(strict, '93.184.216.34'), null);
  });

  it('keeps to the allow-host list once one is given', () => {
    const hosts = parseEgressRules('allow-host=hooks.example.com,allow-host=*.corp.example');
    assert.equal(refuseHost(hosts, 'hooks.example.com'), null);
    assert.equal(refuseHost(hosts, 'HOOKS.example.com.'), null);
    assert.equal(refuseHost(hosts, 'a.b.corp.example'), null);
    assert.match(refuseHost(hosts, 'corp.example') ?? '', /allow-host/);
    assert.match(refuseHost(hosts, 'evil-hooks.example.com') ?? '', /allow-host/);
    assert.match(refuseHost(hosts, '127.0.0.1') ?? '', /allow-host/, 'an IP literal is not a listed host');
  });

  it('names every rule it does not understand', () => {
    assert.throws(
      () => parseEgressRules('deny-private,allow-cidr=10.0.0.0/99,allow-host=bad host,yes'),
      /"allow-cidr=10.0.0.0\/99", "allow-host=bad host", "yes" not understood; accepted: deny-private/,
    );
  });

  it('checks every connection of a fetch, redirects and DNS answers included', async () => {
    const local = await startRedirector();
    const open = createGuardedFetch(parseEgressRules(''));
    const noLoopback = createGuardedFetch(parseEgressRules('deny-loopback'));
    const excepted = createGuardedFetch(parseEgressRules('deny-loopback,allow-cidr=127.0.0.1/32'));
    try {
      assert.equal((await open.fetch(`${local.url}/ok`)).status, 200);
      const viaRedirect = `${local.url}/to?u=${encodeURIComponent('http://169.254.169.254/latest/meta-data/')}`;
      await assert.rejects(open.fetch(viaRedirect), {
        name: 'EgressRefusedError',
        message: /169\.254\.169\.254 .*never reachable/,
      });
      const port = new URL(local.url).port;
      await assert.rejects(noLoopback.fetch(`${local.url}/ok`), {
        name: 'EgressRefusedError',
        message: /loopback/,
      });
      await assert.rejects(
        noLoopback.fetch(`http://localhost:${port}/ok`),
        { name: 'EgressRefusedError', message: /loopback/ },
        'a name is checked on its resolved address',
      );
      assert.equal((await excepted.fetch(`${local.url}/ok`)).status, 200);
      assert.match(
        (await checkEgressUrl(parseEgressRules('deny-loopback'), `http://localhost:${port}/`)) ?? '',
        /localhost resolves to .*loopback/,
      );
      assert.equal(
        await checkEgressUrl(parseEgressRules('deny-loopback'), 'http://no-such-host.invalid/'),
        null,
        'an unresolvable name is left to delivery',
      );
    } finally {
      await Promise.all([open.close(), noLoopback.close(), excepted.close(), local.close()]);
    }
  });
});

forEachStore('egress: submission, delivery and http tasks', (kind) => {
  let store: TestStore;
  let te: TestEngine;
  let receiver: CallbackReceiver;
  let local: Awaited<ReturnType<typeof startRedirector>>;
  const viewer = { client: TEST_CLIENT, admin: true };
  const request = { path: 'POST /job', remoteAddr: '127.0.0.1', headers: {} };

  before(async () => {
    store = await createTestStore(kind);
    receiver = await startCallbackReceiver();
    local = await startRedirector();
    te = await startTestEngine(store, {
      egress: 'deny-loopback',
      settings: { retry_delay: 0 },
      workflows: {
        noop: {
          parameters: {
            type: 'object',
            properties: { rest_endpoints: { type: 'array' }, url: { type: 'string' } },
          },
          tasks: [{ name: 'only', run: 'sleep', with: { seconds: 0 } }],
        },
        fetcher: {
          parameters: { type: 'object', properties: { url: { type: 'string' } } },
          tasks: [{ name: 'get', run: 'http', with: { url: '{{ parameters.url }}' }, retry_limit: 0 }],
        },
      },
    });
  });
  after(async () => {
    await te?.stop();
    await receiver?.close();
    await local?.close();
    await store?.dispose();
  });

  it('refuses a metadata or denied callback target and semaphore at submission, writing nothing', async () => {
    const before = (await te.db.query<{ n: number }>('SELECT count(*)::int AS n FROM jobs')).rows[0]!.n;
    await assert.rejects(
      submitJob(
        te.engine.ctx,
        viewer,
        { job: { workflow: 'noop' }, parameters: { rest_endpoints: ['http://169.254.169.254/hook'] } },
        request,
      ),
      {
        message:
          /parameters.rest_endpoints\[0\] is refused by the egress rules: 169\.254\.169\.254 is a link-local/,
      },
    );
    await assert.rejects(
      submitJob(
        te.engine.ctx,
        viewer,
        { job: { workflow: 'noop' }, parameters: { rest_endpoints: [receiver.url('/x')] } },
        request,
      ),
      { message: /rest_endpoints\[0\] is refused .*deny-loopback/ },
    );
    await assert.rejects(
      submitJob(
        te.engine.ctx,
        viewer,
        { job: { workflow: 'noop', semaphore_url: 'http://[fe80::1]/go' } },
        request,
      ),
      { message: /job.semaphore_url is refused/ },
    );
    const after = (await te.db.query<{ n: number }>('SELECT count(*)::int AS n FROM jobs')).rows[0]!.n;
    assert.equal(after, before);
  });

  it('refuses a schedule whose jobs would post to a denied callback target, storing nothing', async () => {
    const schedule = (endpoint: string) =>
      createCronSchedule(te.engine.ctx, viewer, {
        name: `egress-${kind}`,
        cron: '0 3 * * *',
        workflow: 'noop',
        parameters: { rest_endpoints: [endpoint] },
      });
    await assert.rejects(schedule('http://169.254.169.254/hook'), {
      message:
        /parameters.rest_endpoints\[0\] is refused by the egress rules: 169\.254\.169\.254 is a link-local/,
    });
    await assert.rejects(schedule(receiver.url('/x')), {
      message: /rest_endpoints\[0\] is refused .*deny-loopback/,
    });
    const rows = await te.db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM cron_schedules WHERE name = $1',
      [`egress-${kind}`],
    );
    assert.equal(rows.rows[0]!.n, 0);
    // An address the rules allow is stored.
    const ok = await schedule('http://203.0.113.7/hook');
    assert.equal(ok.result, 'ok');
  });

  it('refuses a denied callback target at delivery and logs why', async () => {
    // Submitted through a context without the rules (as a job written before they were set).
    const open = { ...te.engine.ctx, egress: parseEgressRules('') };
    const { id } = await submitJob(
      open,
      viewer,
      { job: { workflow: 'noop' }, parameters: { rest_endpoints: [receiver.url('/late')] } },
      request,
    );
    await te.waitForState(id, 'completed');
    const logs = await waitFor(
      async () => {
        const l = await te.logs(id);
        return l.some((x) => x.message.includes('egress refused')) ? l : undefined;
      },
      { timeoutMs: 15_000, what: 'a logged egress refusal' },
    );
    assert.ok(logs.some((x) => /loopback/.test(x.message)));
    assert.equal(
      receiver.requests.filter((r) => r.body?.job_id === id).length,
      0,
      'nothing reached the receiver',
    );
  });

  it('fails an http task whose URL, or a redirect of it, is refused', async () => {
    const viaRedirect = `${local.url.replace('127.0.0.1', 'localhost')}/to?u=${encodeURIComponent('http://169.254.169.254/')}`;
    for (const url of ['http://169.254.169.254/latest/meta-data/', `${local.url}/ok`, viaRedirect]) {
      const id = await te.submit('fetcher', { url });
      const row = await te.waitForState(id, 'completed');
      assert.equal(row.failed, true, url);
      const tasks = await te.tasks(id);
      assert.match(tasks[0]!.error ?? '', /egress refused/, url);
    }
  });
});
