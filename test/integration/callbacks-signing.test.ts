/**
 * Replay-proof callbacks (Standard Webhooks): what signing.ts produces, checked by the verifier
 * docs/callbacks-and-schedules.md gives integrators (imported from the page itself), and what the
 * dispatcher sends on both stores, across retries and a secret rotation.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createCallbackDispatcher } from '../../src/engine/callbacks/dispatcher.js';
import { signWebhook, signingHeaders, verifyCallbackSignature } from '../../src/engine/callbacks/signing.js';
import { endSigningSecretOverlap, rotateSigningSecret } from '../../src/engine/clients/clients.js';
import { ManualClock } from '../../src/engine/clock.js';
import type { Service } from '../../src/engine/context.js';
import { insertClient, insertDelivery, insertJob, testContext } from '../helpers/factories.js';
import { startReceiver, type ReceivedRequest, type Receiver } from '../helpers/http-receiver.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { documentedVerifier } from '../helpers/verify-webhook.js';
import { waitFor } from '../helpers/wait-for.js';

const NOW = 1_907_773_231;
const BODY = JSON.stringify({ job_id: 42, status: 'completed', message: 'héllo' });

describe('Standard Webhooks signing, checked by the verifier docs/callbacks-and-schedules.md gives', () => {
  it('signs "<id>.<timestamp>.<body>" as v1,<base64 HMAC-SHA256>', () => {
    const expected = createHmac('sha256', 'k').update(`9153.${NOW}.${BODY}`).digest('base64');
    assert.equal(signWebhook('k', '9153', NOW, BODY), `v1,${expected}`);
    const h = signingHeaders(['k'], '9153', NOW, BODY);
    assert.equal(h['webhook-id'], '9153');
    assert.equal(h['webhook-timestamp'], String(NOW));
    assert.equal(h['webhook-signature'], `v1,${expected}`);
    assert.match(
      h['X-Task-Engine-Signature']!,
      /^sha256=[0-9a-f]{64}$/,
      'the deprecated header is still sent',
    );
  });

  it('a valid delivery verifies', async () => {
    const verify = await documentedVerifier();
    const headers = signingHeaders(['s3cret'], '9153', NOW, BODY);
    assert.equal(verify(BODY, headers, ['s3cret'], NOW), true);
    assert.equal(verify(Buffer.from(BODY), headers, ['s3cret'], NOW + 299), true, 'within the tolerance');
  });

  it('a replay with an old timestamp is rejected, and so is a fresh timestamp put on it', async () => {
    const verify = await documentedVerifier();
    const headers = signingHeaders(['s3cret'], '9153', NOW, BODY);
    assert.equal(verify(BODY, headers, ['s3cret'], NOW + 301), false, 'more than 5 minutes later');
    assert.equal(verify(BODY, headers, ['s3cret'], NOW - 301), false, 'from the future');
    const restamped = { ...headers, 'webhook-timestamp': String(NOW + 3600) };
    assert.equal(verify(BODY, restamped, ['s3cret'], NOW + 3600), false, 'the timestamp is signed');
    const renamed = { ...headers, 'webhook-id': '9154' };
    assert.equal(verify(BODY, renamed, ['s3cret'], NOW), false, 'the id is signed');
  });

  it('a changed body, a wrong secret or a missing header is rejected', async () => {
    const verify = await documentedVerifier();
    const headers = signingHeaders(['s3cret'], '9153', NOW, BODY);
    assert.equal(verify(BODY.replace('42', '43'), headers, ['s3cret'], NOW), false);
    assert.equal(verify(BODY + ' ', headers, ['s3cret'], NOW), false);
    assert.equal(verify(BODY, headers, ['other'], NOW), false);
    assert.equal(verify(BODY, headers, [], NOW), false);
    for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
      const { [name]: _dropped, ...rest } = headers;
      assert.equal(verify(BODY, rest, ['s3cret'], NOW), false, `without ${name}`);
    }
  });

  it('during a rotation the request carries one signature per secret, and each secret verifies', async () => {
    const verify = await documentedVerifier();
    const headers = signingHeaders(['new-secret', 'old-secret'], '9153', NOW, BODY);
    const entries = headers['webhook-signature']!.split(' ');
    assert.equal(entries.length, 2);
    assert.equal(entries[0], signWebhook('new-secret', '9153', NOW, BODY), 'current first');
    assert.equal(verify(BODY, headers, ['new-secret'], NOW), true, 'a receiver that has switched');
    assert.equal(verify(BODY, headers, ['old-secret'], NOW), true, 'a receiver that has not yet');
    assert.equal(verify(BODY, headers, ['third'], NOW), false);
  });
});

forEachStore('callback dispatcher: Standard Webhooks signing', (kind) => {
  let s: TestStore;
  let rx: Receiver;
  let dispatchers: Service[] = [];
  const clock = new ManualClock();
  const seconds = (): number => clock.now().getTime() / 1000;

  before(async () => {
    s = await createTestStore(kind);
    // `/fail1/...` fails its first request, everything else is accepted.
    rx = await startReceiver((req, n) => ({ status: req.path.startsWith('/fail1') && n === 0 ? 503 : 200 }));
    await insertClient(s.db, { name: 'hooks', signing_secret: 'first-secret' });
  });
  /** Starts a dispatcher afresh, so that it finds the rows inserted since (no NOTIFY for those). */
  const restartDispatcher = async (): Promise<void> => {
    for (const d of dispatchers) await d.stop();
    const d = createCallbackDispatcher(testContext(s.db, { clock }), { random: () => 0 });
    dispatchers = [d];
    await d.start();
  };
  after(async () => {
    for (const d of dispatchers) await d.stop();
    dispatchers = [];
    await rx.close();
    await s.dispose();
  });

  /** Queues one delivery of a job of client `hooks` to `path` and waits for `count` requests there. */
  const deliver = async (path: string, count = 1): Promise<{ id: number; requests: ReceivedRequest[] }> => {
    const jobId = await insertJob(s.db, { client: 'hooks', queue_state: 'started' });
    const id = await insertDelivery(s.db, {
      job_id: jobId,
      target_url: `${rx.url}${path}`,
      body: { job_id: jobId, status: 'completed', message: 'héllo' },
    });
    await restartDispatcher();
    await waitFor(() => rx.on(path).length >= count, { what: `${count} request(s) to ${path}` });
    return { id, requests: rx.on(path) };
  };

  void it('every attempt is signed over id, its own timestamp and the body; a replay later is rejected', async () => {
    const verify = await documentedVerifier();
    const sentAt1 = seconds();
    const { id } = await deliver('/fail1/a');
    await waitFor(() => clock.nextTimerAt() === clock.now().getTime() + 1_000, { what: 'the retry in 1 s' });
    await clock.advance(1_000);
    await waitFor(() => rx.on('/fail1/a').length === 2, { what: 'the retry' });
    const [attempt1, attempt2] = rx.on('/fail1/a') as [ReceivedRequest, ReceivedRequest];
    for (const r of [attempt1, attempt2]) {
      assert.equal(r.headers['webhook-id'], String(id), 'webhook-id is the delivery id on every attempt');
      assert.equal(r.headers['x-task-engine-delivery'], String(id));
      assert.match(String(r.headers['webhook-signature']), /^v1,[A-Za-z0-9+/]+=*$/);
    }
    assert.equal(Number(attempt1.headers['webhook-timestamp']), Math.floor(sentAt1));
    assert.equal(
      Number(attempt2.headers['webhook-timestamp']),
      Math.floor(sentAt1) + 1,
      'each attempt carries its own send time',
    );
    assert.equal(
      verify(attempt1.raw, attempt1.headers, ['first-secret'], sentAt1),
      true,
      'a valid delivery verifies',
    );
    assert.equal(verify(attempt2.raw, attempt2.headers, ['first-secret'], seconds()), true);
    assert.equal(
      verify(attempt1.raw, attempt1.headers, ['first-secret'], sentAt1 + 10 * 60),
      false,
      'the same request replayed ten minutes later is rejected',
    );
    assert.equal(
      verify(attempt1.raw.replace('héllo', 'hello'), attempt1.headers, ['first-secret'], sentAt1),
      false,
      'a changed body is rejected',
    );
    assert.equal(verify(attempt1.raw, attempt1.headers, ['wrong-secret'], sentAt1), false);
    assert.equal(
      verifyCallbackSignature(
        'first-secret',
        attempt1.raw,
        attempt1.headers['x-task-engine-signature'] as string,
      ),
      true,
      'the deprecated header is still sent, with the current secret',
    );
  });

  void it('during a rotation both secrets verify; after the overlap only the new one', async () => {
    const verify = await documentedVerifier();
    const rotated = await rotateSigningSecret(s.db, 'hooks', {}, clock);
    assert.equal(rotated.previous_valid, true);
    const [during] = (await deliver('/ok/rotating')).requests;
    assert.equal(String(during!.headers['webhook-signature']).split(' ').length, 2);
    assert.equal(
      verify(during!.raw, during!.headers, [rotated.signing_secret], seconds()),
      true,
      'the new secret',
    );
    assert.equal(
      verify(during!.raw, during!.headers, ['first-secret'], seconds()),
      true,
      'the previous secret',
    );
    assert.equal(
      verifyCallbackSignature(
        rotated.signing_secret,
        during!.raw,
        during!.headers['x-task-engine-signature'] as string,
      ),
      true,
      'the deprecated header uses the current secret',
    );

    assert.equal(await endSigningSecretOverlap(s.db, 'hooks', clock), true);
    assert.equal(await endSigningSecretOverlap(s.db, 'hooks', clock), false, 'nothing left to drop');
    const [afterOverlap] = (await deliver('/ok/rotated')).requests;
    assert.equal(String(afterOverlap!.headers['webhook-signature']).split(' ').length, 1);
    assert.equal(verify(afterOverlap!.raw, afterOverlap!.headers, [rotated.signing_secret], seconds()), true);
    assert.equal(verify(afterOverlap!.raw, afterOverlap!.headers, ['first-secret'], seconds()), false);

    const sudden = await rotateSigningSecret(s.db, 'hooks', { keepPrevious: false }, clock);
    const [leaked] = (await deliver('/ok/leaked')).requests;
    assert.equal(verify(leaked!.raw, leaked!.headers, [sudden.signing_secret], seconds()), true);
    assert.equal(verify(leaked!.raw, leaked!.headers, [rotated.signing_secret], seconds()), false);
  });

  void it('a client without a secret gets webhook-id and webhook-timestamp but no signature', async () => {
    await insertClient(s.db, { name: 'plain' });
    const jobId = await insertJob(s.db, { client: 'plain', queue_state: 'started' });
    await insertDelivery(s.db, { job_id: jobId, target_url: `${rx.url}/ok/plain` });
    await restartDispatcher();
    await waitFor(() => rx.on('/ok/plain').length === 1, { what: 'the unsigned request' });
    const r = rx.on('/ok/plain')[0]!;
    assert.ok(r.headers['webhook-id']);
    assert.equal(r.headers['webhook-timestamp'], String(Math.floor(seconds())));
    assert.equal(r.headers['webhook-signature'], undefined);
    assert.equal(r.headers['x-task-engine-signature'], undefined);
  });
});
