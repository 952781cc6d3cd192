/**
 * A load generator for `POST /job`, run as its own process so that its CPU is not counted as the
 * engine's: `node --import tsx bench/helpers/post-client.ts <url> <jobs> <in-flight>` with the
 * client name and API key in `BENCH_CLIENT` and `BENCH_API_KEY`, and the request body in
 * `BENCH_BODY`. It prints `READY` once its connections are open, waits for a line `GO` on stdin,
 * sends `<jobs>` requests with `<in-flight>` of them outstanding at all times over keep-alive
 * connections, then prints one JSON line `{"sent": n, "ms": elapsed, "cpuMs": its own CPU}` and
 * exits; a non-2xx answer ends it with status 1 and the answer on stderr.
 */
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';

const [url, jobsArg, inFlightArg] = process.argv.slice(2);
if (!url || !jobsArg || !inFlightArg) {
  console.error('usage: post-client.ts <url> <jobs> <in-flight>');
  process.exit(2);
}
const jobs = Number(jobsArg);
const inFlight = Number(inFlightArg);
const target = new URL(url);
const body = Buffer.from(process.env.BENCH_BODY ?? '{}');
const agent = new Agent({ keepAlive: true, maxSockets: inFlight });
const headers = {
  client: process.env.BENCH_CLIENT ?? '',
  'api-key': process.env.BENCH_API_KEY ?? '',
  'content-type': 'application/json',
  'content-length': String(body.length),
};

function post(): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent, headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          if (res.statusCode === 200 || res.statusCode === 201) resolve();
          else
            reject(
              new Error(
                `POST ${target.pathname} answered ${res.statusCode}: ${Buffer.concat(chunks).toString()}`,
              ),
            );
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function main(): Promise<void> {
  // Open the connections (one request each) before the measurement starts.
  let warm = 0;
  const warmUp = Math.min(inFlight, jobs);
  await Promise.all(Array.from({ length: warmUp }, () => post().then(() => warm++)));
  process.stdout.write('READY\n');
  await new Promise<void>((resolve) => {
    process.stdin.on('data', (d: Buffer) => {
      if (d.toString().includes('GO')) resolve();
    });
  });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let next = warm;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < jobs) {
        next++;
        await post();
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(
    `${JSON.stringify({ sent: jobs - warm, ms: performance.now() - t0, cpuMs: (cpu.user + cpu.system) / 1000 })}\n`,
  );
  agent.destroy();
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
