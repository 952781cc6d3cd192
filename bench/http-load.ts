/**
 * A small HTTP load generator, run as its own process by the benchmarks so that the client's
 * work does not share the server's event loop: keeps `inflight` POST requests of one body in
 * flight on keep-alive connections for `seconds`, then prints one JSON line
 * `{requests, jobs, secs, errors}` (jobs: requests × `jobsPerRequest`, or the sum of the replies'
 * `accepted` when `countAccepted` is set).
 *
 * `node --import tsx bench/http-load.ts '<json options>'` with options
 * `{url, headers, bodyFile, inflight, seconds, jobsPerRequest, countAccepted}`.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { performance } from 'node:perf_hooks';

interface LoadOptions {
  url: string;
  headers: Record<string, string>;
  bodyFile: string;
  inflight: number;
  seconds: number;
  jobsPerRequest: number;
  countAccepted: boolean;
}

const opts = JSON.parse(process.argv[2] ?? '{}') as LoadOptions;
const body = readFileSync(opts.bodyFile);
const target = new URL(opts.url);
const agent = new http.Agent({ keepAlive: true, maxSockets: opts.inflight });
const headers = {
  ...opts.headers,
  'content-type': 'application/json',
  'content-length': String(body.length),
};

function post(): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent, headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

let requests = 0;
let jobs = 0;
let errors = 0;
let firstError: string | null = null;
const t0 = performance.now();
const deadline = t0 + opts.seconds * 1000;
await Promise.all(
  Array.from({ length: opts.inflight }, async () => {
    while (performance.now() < deadline) {
      const { status, text } = await post();
      if (status !== 200) {
        errors++;
        firstError ??= `${status} ${text.slice(0, 300)}`;
        continue;
      }
      requests++;
      jobs += opts.countAccepted ? (JSON.parse(text) as { accepted: number }).accepted : opts.jobsPerRequest;
    }
  }),
);
const secs = (performance.now() - t0) / 1000;
agent.destroy();
process.stdout.write(JSON.stringify({ requests, jobs, secs, errors, firstError }) + '\n');
