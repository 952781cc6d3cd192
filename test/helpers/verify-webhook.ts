/**
 * The receiver-side verifier of callbacks exactly as docs/callbacks-and-schedules.md documents it:
 * the code block after the `verify-webhook` marker is read from the page and imported, so the
 * tests run what integrators copy, and the page cannot drift from what the engine sends.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/** The documented `verifyWebhook(rawBody, headers, secrets, nowSeconds?)`. */
export type VerifyWebhook = (
  rawBody: string | Buffer,
  headers: IncomingHttpHeaders | Record<string, string | undefined>,
  secrets: readonly string[],
  nowSeconds?: number,
) => boolean;

const DOC = new URL('../../docs/callbacks-and-schedules.md', import.meta.url);
const MARKER = '<!-- verify-webhook:';

let loaded: Promise<VerifyWebhook> | undefined;

/** Imports the documented verifier (once per process). */
export function documentedVerifier(): Promise<VerifyWebhook> {
  loaded ??= (async () => {
    const page = await readFile(DOC, 'utf8');
    const at = page.indexOf(MARKER);
    if (at < 0) throw new Error(`${DOC.pathname} has no ${MARKER} block`);
    const block = /```js\n([\s\S]*?)\n```/.exec(page.slice(at));
    if (!block) throw new Error(`no \`\`\`js block after ${MARKER} in ${DOC.pathname}`);
    const dir = await mkdtemp(path.join(tmpdir(), 'verify-webhook-'));
    const file = path.join(dir, 'verify-webhook.mjs');
    await writeFile(file, block[1]!);
    const mod = (await import(pathToFileURL(file).href)) as { verifyWebhook?: VerifyWebhook };
    if (typeof mod.verifyWebhook !== 'function')
      throw new Error('the documented block exports no verifyWebhook');
    return mod.verifyWebhook;
  })();
  return loaded;
}
