/**
 * Outbound HTTP under the egress rules (`rules.ts`). Every connection the engine opens for a
 * callback, a semaphore check, an `http` task or an HLS fetch goes through one undici Agent whose
 * connector checks the address it is about to connect to: the host against the allow-list, each
 * resolved address (and an IP literal, which is never resolved) against the ranges. Because the
 * check is in the connector, it covers every redirect hop and the address actually used — a DNS
 * answer that changes between a check and the connection cannot get past it.
 */
import dns from 'node:dns';
import type { LookupFunction } from 'node:net';
import { isIP } from 'node:net';
import { Agent, buildConnector, fetch as undiciFetch } from 'undici';
import { DEFAULT_EGRESS, refuseAddress, refuseHost, type EgressPolicy } from './rules.js';

/** A request refused by the egress rules; `message` says which rule. */
export class EgressRefusedError extends Error {
  constructor(
    readonly url: string,
    readonly reason: string,
  ) {
    super(`egress refused for ${url}: ${reason}`);
    this.name = 'EgressRefusedError';
  }
}

/** `fetch` with the egress rules applied; same arguments and answer as the global `fetch`. */
export type GuardedFetch = (url: string | URL, init?: RequestInit) => Promise<Response>;

/** A DNS lookup that refuses, as an error, any answer holding a refused address. */
function guardedLookup(policy: EgressPolicy): LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      for (const a of addresses) {
        const reason = refuseAddress(policy, a.address);
        if (reason) return callback(Object.assign(new Error(reason), { code: 'EGRESS_REFUSED' }), '', 0);
      }
      if ((options as { all?: boolean }).all)
        return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, addresses);
      const first = addresses[0];
      if (!first)
        return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), '', 0);
      callback(null, first.address, first.family);
    });
  };
}

/**
 * Creates the guarded fetch of one policy (one Agent, kept for the life of the engine).
 * @returns the fetch and a `close()` that ends its connections.
 */
export function createGuardedFetch(policy: EgressPolicy = DEFAULT_EGRESS): {
  fetch: GuardedFetch;
  close: () => Promise<void>;
} {
  const connector = buildConnector({ lookup: guardedLookup(policy) });
  const agent = new Agent({
    connect: (options, callback) => {
      const host = options.hostname.replace(/^\[|\]$/g, '');
      const reason = refuseHost(policy, host) ?? (isIP(host) ? refuseAddress(policy, host) : null);
      if (reason) {
        callback(Object.assign(new Error(reason), { code: 'EGRESS_REFUSED' }), null);
        return;
      }
      connector(options, callback);
    },
  });
  const fetch: GuardedFetch = async (url, init) => {
    try {
      return await undiciFetch(url, {
        ...init,
        dispatcher: agent,
      });
    } catch (err) {
      const refused = findRefusal(err);
      if (refused) throw new EgressRefusedError(String(url), refused);
      throw err;
    }
  };
  return { fetch, close: () => agent.close() };
}

/** The egress reason inside a fetch failure (`TypeError: fetch failed` with a cause chain), if any. */
function findRefusal(err: unknown): string | null {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++)
    if ((e as { code?: string }).code === 'EGRESS_REFUSED') return e.message;
  return null;
}

/**
 * Checks a URL known at submission (a callback target, a semaphore URL) against the rules: the
 * host against the allow-list, an IP literal against the ranges, and a name's current DNS
 * answers against the ranges. A name that does not resolve now is not refused (it may resolve at
 * delivery, where the connector checks again).
 * @returns why it is refused, or null.
 */
export async function checkEgressUrl(policy: EgressPolicy, url: string): Promise<string | null> {
  let host: string;
  try {
    host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return null; // the caller's URL validation reports a malformed URL
  }
  const byName = refuseHost(policy, host);
  if (byName) return byName;
  if (isIP(host)) return refuseAddress(policy, host);
  let addresses: dns.LookupAddress[];
  try {
    addresses = await dns.promises.lookup(host, { all: true });
  } catch {
    return null;
  }
  for (const a of addresses) {
    const reason = refuseAddress(policy, a.address);
    if (reason) return `${host} resolves to ${reason}`;
  }
  return null;
}
