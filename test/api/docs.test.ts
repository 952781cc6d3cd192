/**
 * The documentation stays in step with the code: docs/errors.md lists every catalogue code with its
 * status, docs/configuration.md every environment variable.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { CONFIG_FIELDS } from '../../src/config/schema.js';
import { ERROR_CATALOGUE } from '../../src/errors/catalogue.js';

const doc = (name: string) => readFile(new URL(`../../docs/${name}`, import.meta.url), 'utf8');

void test('docs/errors.md has one row per catalogue code with its status, retryable flag and summary', async () => {
  const text = await doc('errors.md');
  for (const [code, e] of Object.entries(ERROR_CATALOGUE))
    assert.ok(
      text.includes(`| \`${code}\` | ${e.status} | ${e.retryable ? 'yes' : 'no'} | ${e.summary} |`),
      `docs/errors.md lists ${code}`,
    );
});

void test('docs/configuration.md describes every environment variable of the config schema', async () => {
  const text = await doc('configuration.md');
  for (const f of CONFIG_FIELDS)
    assert.ok(text.includes(`| \`${f.env}\` |`), `docs/configuration.md lists ${f.env}`);
});
