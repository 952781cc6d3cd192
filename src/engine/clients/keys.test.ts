import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { apiKeyMatches, generateSecret, hashApiKey, sha256Hex } from './keys.js';

describe('API key hashes', () => {
  it('sha256Hex is the lowercase hex SHA-256 of the UTF-8 bytes (a known vector, and non-ASCII text)', () => {
    assert.equal(sha256Hex('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    const text = 'clé ключ 🔑';
    assert.equal(sha256Hex(text), createHash('sha256').update(Buffer.from(text, 'utf8')).digest('hex'));
  });

  it('a key matches its own stored hash and no other key', () => {
    const key = generateSecret();
    assert.match(hashApiKey(key), /^[0-9a-f]{64}$/);
    assert.equal(apiKeyMatches(key, hashApiKey(key)), true);
    assert.equal(apiKeyMatches(`${key}x`, hashApiKey(key)), false);
    assert.equal(apiKeyMatches(key, '0'.repeat(64)), false);
    assert.equal(apiKeyMatches(key, 'not hex'), false);
  });
});
