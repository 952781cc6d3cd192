/**
 * Egress rules: which addresses the engine's outbound requests (callbacks, semaphore checks, the
 * `http` handler, HLS fetches) may reach. Configured with `TASK_ENGINE_EGRESS`, a comma list of
 *
 * - `deny-private` — refuse private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7);
 * - `deny-loopback` — refuse loopback (127/8, ::1);
 * - `allow-host=<name>` — only the listed hosts (exact, or `*.example.com` for its subdomains) may
 *   be reached; once one is given, every other host name is refused;
 * - `allow-cidr=<range>` — addresses in this range are allowed even when a `deny-…` rule covers
 *   them (for example the one private network the callbacks go to).
 *
 * Always refused, whatever the rules: link-local addresses (169.254/16, fe80::/10) — which hold
 * the cloud metadata services (169.254.169.254, fd00:ec2::254) — "this network" (0/8),
 * multicast, broadcast and the unspecified address. Private and loopback ranges are allowed by
 * default, for on-premises use. The rules are checked on the resolved addresses, for every
 * connection (so a DNS answer that changes between check and connect, or a redirect, cannot slip
 * through): see `guarded-fetch.ts`.
 */
import { BlockList, isIP } from 'node:net';

/** The parsed egress policy. */
export interface EgressPolicy {
  denyPrivate: boolean;
  denyLoopback: boolean;
  /** Host patterns (lower case; `*.x` for subdomains of x); empty = any host. */
  allowHosts: string[];
  /** Ranges allowed despite `deny-private` / `deny-loopback` (never despite the fixed denials). */
  allowCidrs: BlockList;
  /** The rule text, for messages. */
  source: string;
}

/** The default policy: only the fixed denials. */
export const DEFAULT_EGRESS: EgressPolicy = parseEgressRules('');

const ALWAYS_DENIED = new BlockList();
ALWAYS_DENIED.addSubnet('169.254.0.0', 16, 'ipv4');
ALWAYS_DENIED.addSubnet('0.0.0.0', 8, 'ipv4');
ALWAYS_DENIED.addSubnet('224.0.0.0', 4, 'ipv4');
ALWAYS_DENIED.addSubnet('240.0.0.0', 4, 'ipv4'); // reserved, and 255.255.255.255 broadcast
ALWAYS_DENIED.addSubnet('100.100.100.200', 32, 'ipv4'); // a cloud metadata address outside 169.254/16
ALWAYS_DENIED.addSubnet('fe80::', 10, 'ipv6');
ALWAYS_DENIED.addSubnet('ff00::', 8, 'ipv6');
ALWAYS_DENIED.addSubnet('fd00:ec2::254', 128, 'ipv6');
ALWAYS_DENIED.addAddress('::', 'ipv6');

const PRIVATE = new BlockList();
PRIVATE.addSubnet('10.0.0.0', 8, 'ipv4');
PRIVATE.addSubnet('172.16.0.0', 12, 'ipv4');
PRIVATE.addSubnet('192.168.0.0', 16, 'ipv4');
PRIVATE.addSubnet('100.64.0.0', 10, 'ipv4');
PRIVATE.addSubnet('fc00::', 7, 'ipv6');

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

const HOST_PATTERN = /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;

/**
 * Parses `TASK_ENGINE_EGRESS`.
 * @param text - the comma list described in this module's header; empty = the default policy.
 * @throws Error naming every bad item and what is accepted.
 */
export function parseEgressRules(text: string): EgressPolicy {
  const policy: EgressPolicy = {
    denyPrivate: false,
    denyLoopback: false,
    allowHosts: [],
    allowCidrs: new BlockList(),
    source: text.trim(),
  };
  const bad: string[] = [];
  for (const raw of text.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const [key, value = ''] = item.split('=', 2) as [string, string?];
    if (item === 'deny-private') policy.denyPrivate = true;
    else if (item === 'deny-loopback') policy.denyLoopback = true;
    else if (key === 'allow-host' && HOST_PATTERN.test(value.toLowerCase()))
      policy.allowHosts.push(value.toLowerCase());
    else if (key === 'allow-cidr' && addCidr(policy.allowCidrs, value)) continue;
    else bad.push(item);
  }
  if (bad.length > 0)
    throw new Error(
      `${bad.map((b) => JSON.stringify(b)).join(', ')} not understood; accepted: deny-private, deny-loopback, allow-host=<name or *.domain>, allow-cidr=<address>/<bits>`,
    );
  return policy;
}

function addCidr(list: BlockList, text: string): boolean {
  const [address = '', bitsText = ''] = text.split('/', 2);
  const family = isIP(address);
  const bits = Number(bitsText);
  if (family === 0 || !/^\d{1,3}$/.test(bitsText) || bits > (family === 4 ? 32 : 128)) return false;
  list.addSubnet(address, bits, family === 4 ? 'ipv4' : 'ipv6');
  return true;
}

/**
 * Why `address` (an IP literal) may not be reached under `policy`, or null when it may.
 * IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are judged as their IPv4 address.
 */
export function refuseAddress(policy: EgressPolicy, address: string): string | null {
  let ip = address.replace(/^\[|\]$/g, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) ip = mapped[1]!;
  const family = isIP(ip);
  if (family === 0) return `${address} is not an IP address`;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (ALWAYS_DENIED.check(ip, type))
    return `${ip} is a link-local, metadata, multicast or reserved address, which is never reachable`;
  if (policy.allowCidrs.check(ip, type)) return null;
  if (policy.denyPrivate && PRIVATE.check(ip, type))
    return `${ip} is a private address and TASK_ENGINE_EGRESS has deny-private`;
  if (policy.denyLoopback && LOOPBACK.check(ip, type))
    return `${ip} is a loopback address and TASK_ENGINE_EGRESS has deny-loopback`;
  return null;
}

/** Why host name `host` may not be reached under `policy`'s allow-list, or null when it may. */
export function refuseHost(policy: EgressPolicy, host: string): string | null {
  if (policy.allowHosts.length === 0) return null;
  const name = host
    .replace(/^\[|\]$/g, '')
    .toLowerCase()
    .replace(/\.$/, '');
  const allowed = policy.allowHosts.some((p) =>
    p.startsWith('*.') ? name.endsWith(p.slice(1)) && name.length > p.length - 1 : name === p,
  );
  return allowed ? null : `host ${name} is not in the allow-host list of TASK_ENGINE_EGRESS`;
}
