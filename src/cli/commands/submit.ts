/**
 * `task-engine submit <workflow>`: submits a job to a running engine over the API.
 * Parameters: `--param key=value` (a string) or `--param key:=<JSON>` (a number, boolean, array,
 * object…), repeatable; or a whole body with `--json '<body>'` / `--json @file.json` / `--json -`.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { addConnectionOptions, callApi, resolveConnection, type ConnectionOptions } from '../http-client.js';
import { CliError, type CliIO } from '../io.js';
import { followJobToExit } from '../follow/follow-job.js';

interface SubmitOptions extends ConnectionOptions {
  param: string[];
  json?: string;
  priority?: string;
  runAt?: string;
  semaphoreUrl?: string;
  persist?: boolean;
  topOfQueue?: boolean;
  idempotencyKey?: string;
  follow?: boolean;
  plain?: boolean;
}

/**
 * Parses `key=value` (string value) or `key:=json` (JSON value) into `into`.
 * @throws {CliError} (exit 2) naming the accepted forms.
 */
export function parseParam(text: string, into: Record<string, unknown>): Record<string, unknown> {
  const typed = /^([^=:]+):=(.*)$/s.exec(text);
  if (typed) {
    try {
      into[typed[1]!] = JSON.parse(typed[2]!);
    } catch {
      throw new CliError(
        `--param ${text}: the value after := must be JSON (e.g. seconds:=2, flags:='["a"]')`,
        2,
      );
    }
    return into;
  }
  const plain = /^([^=]+)=(.*)$/s.exec(text);
  if (!plain) throw new CliError(`--param ${text}: use key=value (a string) or key:=<JSON>`, 2);
  into[plain[1]!] = plain[2]!;
  return into;
}

async function readBody(spec: string, stdin: () => Promise<string>): Promise<unknown> {
  const text =
    spec === '-' ? await stdin() : spec.startsWith('@') ? await readFile(spec.slice(1), 'utf8') : spec;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CliError(`--json: not valid JSON (${(err as Error).message})`, 2);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Registers `submit`. */
export function registerSubmitCommand(program: Command, io: CliIO): void {
  addConnectionOptions(
    program
      .command('submit <workflow>')
      .description('submit a job to a running engine')
      .option(
        '-p, --param <key=value>',
        'a parameter: key=value (string) or key:=<JSON>; repeatable',
        (v: string, acc: string[]) => [...acc, v],
        [],
      )
      .option(
        '--json <body>',
        'the whole request body as JSON, @file, or - for stdin (job.workflow is set from <workflow>)',
      )
      .option('--priority <1-10>', 'priority, 1 most urgent (default 5)')
      .option('--run-at <time>', 'when to run, e.g. 2030-01-01T10:00:00.000 (UTC)')
      .option('--semaphore-url <url>', 'wait until this URL answers 2xx/3xx')
      .option('--persist', 'keep the job out of the clean-up')
      .option('--top-of-queue', 'admit before every other queued job')
      .option('--idempotency-key <key>', 'a repeat with this key answers the first job and creates nothing')
      .option(
        '-f, --follow',
        'then show the job live (a progress bar per task, its log) until it ends; exit 0 only when it completed without failure',
      )
      .option('--plain', 'with --follow: plain lines even on a terminal'),
  ).action(async (workflow: string, opts: SubmitOptions) => {
    const conn = await resolveConnection(io, opts);
    let body: Record<string, unknown>;
    if (opts.json !== undefined) {
      const parsed = await readBody(opts.json, readStdin);
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
        throw new CliError('--json must be a JSON object such as {"parameters": {…}}', 2);
      body = parsed as Record<string, unknown>;
    } else body = {};
    const job: Record<string, unknown> = {
      ...((body.job as Record<string, unknown> | undefined) ?? {}),
      workflow,
    };
    if (opts.priority !== undefined) job.priority = opts.priority;
    if (opts.runAt !== undefined) job.run_at = opts.runAt;
    if (opts.semaphoreUrl !== undefined) job.semaphore_url = opts.semaphoreUrl;
    if (opts.persist) job.persist = true;
    if (opts.topOfQueue) job.top_of_queue = true;
    if (opts.idempotencyKey !== undefined) job.idempotency_key = opts.idempotencyKey;
    const parameters = { ...((body.parameters as Record<string, unknown> | undefined) ?? {}) };
    for (const p of opts.param) parseParam(p, parameters);
    const reply = await callApi<{ id: number; result: string }>(conn, 'POST', '/job', {
      ...body,
      job,
      parameters,
    });
    io.out(`job ${reply.id} ${reply.result}`);
    if (opts.follow)
      await followJobToExit(io, conn, reply.id, { showAll: false, plain: opts.plain === true });
  });
}
