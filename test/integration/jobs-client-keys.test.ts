import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import {
  authenticateClientCached,
  createClient,
  rememberedViewer,
  revokeClient,
  VERIFIED_KEY_TTL_MS,
} from '../../src/engine/clients/clients.js';
import { ManualClock } from '../../src/engine/clock.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

forEachStore('clients: the verified-key memory runs on the engine clock', (kind) => {
  let s: TestStore;
  before(async () => {
    s = await createTestStore(kind);
  });
  after(async () => {
    await s.dispose();
  });

  it('asks the database again once VERIFIED_KEY_TTL_MS of clock time has passed', async () => {
    const clock = new ManualClock();
    const { api_key } = await createClient(s.db, { name: 'ttl-client' }, clock);
    const auth = () => authenticateClientCached(s.db, 'ttl-client', api_key, clock);
    const revoke = (revoked: boolean) =>
      s.db.query(`UPDATE clients SET revoked_at = ${revoked ? 'now()' : 'NULL'} WHERE name = 'ttl-client'`);
    // The first calls subscribe to client changes; keys are remembered once the process listens.
    // Revoked behind the engine's back (no notification), only the memory still accepts the key.
    await waitFor(
      async () => {
        await auth();
        await revoke(true);
        const remembered = (await auth()) !== null;
        if (!remembered) await revoke(false);
        return remembered;
      },
      { what: 'the verified key to be remembered' },
    );
    await clock.advance(VERIFIED_KEY_TTL_MS - 1);
    assert.notEqual(await auth(), null, 'still remembered just before the TTL');
    await clock.advance(1);
    assert.equal(await auth(), null, 'asked again at the TTL: the revoked key fails');
  });

  it('rememberedViewer answers only a key the database verified, never a wrong one, and nothing once the client is revoked', async () => {
    const clock = new ManualClock();
    const { api_key } = await createClient(s.db, { name: 'memo-client' }, clock);
    assert.equal(rememberedViewer(s.db, 'memo-client', api_key, clock), undefined, 'not verified yet');
    await waitFor(
      async () => {
        await authenticateClientCached(s.db, 'memo-client', api_key, clock);
        return rememberedViewer(s.db, 'memo-client', api_key, clock) !== undefined;
      },
      { what: 'the verified key to be remembered' },
    );
    assert.deepEqual(rememberedViewer(s.db, 'memo-client', api_key, clock), {
      client: 'memo-client',
      admin: false,
    });
    assert.equal(rememberedViewer(s.db, 'memo-client', `${api_key}x`, clock), undefined, 'a wrong key');
    assert.equal(
      rememberedViewer(s.db, 'ttl-client', api_key, clock),
      undefined,
      'the key under another name',
    );
    await revokeClient(s.db, 'memo-client', clock);
    assert.equal(
      rememberedViewer(s.db, 'memo-client', api_key, clock),
      undefined,
      'forgotten at the revocation',
    );
    assert.equal(await authenticateClientCached(s.db, 'memo-client', api_key, clock), null);
  });
});
