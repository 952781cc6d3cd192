/**
 * `task-engine serve` (the default command): the whole engine in one process. With no
 * configuration it runs on the embedded database in `./.task-engine` and creates `demo-client`.
 */
import { submitJob } from '../../engine/jobs/service.js';
import type { Command } from 'commander';
import { loadConfig } from '../../config/load-config.js';
import type { EngineConfig } from '../../config/schema.js';
import { embeddedDatabaseDir, startTaskEngine, type RunningTaskEngine } from '../../server.js';
import { CliError, waitForSignal, type CliIO } from '../io.js';

/** Options of `serve` that override environment variables. */
interface ServeOptions {
  host?: string;
  port?: string;
  dataDir?: string;
}

/** Copies command options over the environment, so one loader validates both. */
export function envWith(env: CliIO['env'], overrides: Record<string, string | undefined>): CliIO['env'] {
  const out = { ...env };
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined) out[k] = v;
  return out;
}

/** The lines printed once when `demo-client` was just created: its key and a ready-to-paste curl. */
export function demoClientBanner(url: string, name: string, apiKey: string): string[] {
  const body = JSON.stringify({ job: { workflow: 'demo' }, parameters: { content_id: 'hello' } });
  return [
    '',
    `Created the admin client "${name}". Its API key is shown only this once:`,
    '',
    `  ${apiKey}`,
    '',
    'Submit the bundled demo workflow:',
    '',
    `  curl -s -X POST ${url}/job -H 'content-type: application/json' -H 'client: ${name}' -H 'api-key: ${apiKey}' -d '${body}'`,
    '',
    'Or from the command line:',
    '',
    `  TASK_ENGINE_CLIENT=${name} TASK_ENGINE_API_KEY=${apiKey} npm run task-engine -- submit demo --param content_id=hello --follow`,
    '',
  ];
}

/** Runs a started engine until SIGINT/SIGTERM; SIGHUP re-reads the workflow definitions. */
export async function runUntilSignal(io: CliIO, running: RunningTaskEngine): Promise<void> {
  const offHup = io.onSignal(['SIGHUP'], () => {
    running.engine.ctx.catalog.reload().then(
      () => running.engine.ctx.logger.info('workflow definitions reloaded (SIGHUP)'),
      (err: unknown) =>
        running.engine.ctx.logger.error(
          { err },
          'workflow definitions not reloaded; the previous ones stay in use',
        ),
    );
  });
  const signal = await waitForSignal(io, ['SIGINT', 'SIGTERM']);
  offHup();
  const grace = running.engine.ctx.config.shutdownGraceSeconds;
  io.err(
    `${signal}: stopping (running task attempts may finish within ${grace} s; send ${signal} again to hand them back now)…`,
  );
  // A second signal while stopping: hand the running attempts back now and finish the stop; a
  // third: exit at once (the attempts are then recovered as stalled by the other engines).
  let signals = 0;
  const offForce = io.onSignal(['SIGINT', 'SIGTERM'], () => {
    signals++;
    if (signals === 1) {
      io.err('handing running task attempts back now');
      running.engine.hurry();
      return;
    }
    io.err('stopping at once');
    io.exitNow(130);
  });
  try {
    await running.stop();
  } finally {
    offForce();
  }
  io.err('stopped');
}

/** Prints where the engine listens and what it runs on. */
export function describeStart(io: CliIO, config: EngineConfig, running: RunningTaskEngine): void {
  const store = config.databaseUrl ? 'PostgreSQL' : `embedded database in ${embeddedDatabaseDir(config)}`;
  if (running.url) {
    io.out(`Task Engine ${running.engine.ctx.version} listening on ${running.url} (${store})`);
    io.out(`API docs: ${running.url}/docs`);
    if (!running.bootstrap.demoClient) io.out(`Console: ${running.url}/ui`);
  } else
    io.out(`Task Engine ${running.engine.ctx.version} running roles ${config.roles.join(', ')} (${store})`);
  const demo = running.bootstrap.demoClient;
  if (demo && running.url)
    for (const line of demoClientBanner(running.url, demo.name, demo.api_key)) io.out(line);
}

/** Turns a listen failure into a message that says which variable to change; other errors pass through. */
export function explainStartError(err: unknown, config: EngineConfig): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'EADDRINUSE')
    return new CliError(
      `${config.host}:${config.port} is already in use; set TASK_ENGINE_PORT (or --port) to another port, or 0 for any free port`,
    );
  if (code === 'EACCES' || code === 'EADDRNOTAVAIL')
    return new CliError(
      `cannot listen on ${config.host}:${config.port} (${String(code)}); check TASK_ENGINE_HOST and TASK_ENGINE_PORT`,
    );
  return err;
}

/**
 * On the first start of a new embedded data folder (`demo-client` was just created), submits one
 * job of the bundled `demo` workflow, so the console has a job and its task graph to show at once.
 * A failure is printed and does not stop the engine.
 */
export async function submitWelcomeJob(io: CliIO, running: RunningTaskEngine): Promise<void> {
  const demo = running.bootstrap.demoClient;
  if (!demo || !running.url || !running.engine.ctx.catalog.resolve(demo.name, 'demo')) return;
  try {
    const { id } = await submitJob(
      running.engine.ctx,
      { client: demo.name, admin: true },
      { job: { workflow: 'demo' }, parameters: { content_id: 'welcome' } },
      { path: 'POST /job', remoteAddr: 'serve', headers: {} },
    );
    io.out(
      `Console: ${running.url}/ui (sign in as ${demo.name} with the key above; job ${id} is a first demo job)`,
    );
  } catch (err) {
    io.err(`the first demo job was not submitted: ${(err as Error).message}`);
  }
}

/** Registers `serve`. */
export function registerServeCommand(program: Command, io: CliIO): void {
  program
    .command('serve', { isDefault: true })
    .description(
      'run the engine: API, controller, scheduler and workers (embedded database unless DATABASE_URL is set)',
    )
    .option('--host <address>', 'listen address (TASK_ENGINE_HOST)')
    .option('--port <port>', 'listen port, 0 for any free port (TASK_ENGINE_PORT)')
    .option('--data-dir <dir>', 'embedded database and storage folder (TASK_ENGINE_DATA_DIR)')
    .action(async (opts: ServeOptions) => {
      const config = loadConfig(
        envWith(io.env, {
          TASK_ENGINE_HOST: opts.host,
          TASK_ENGINE_PORT: opts.port,
          TASK_ENGINE_DATA_DIR: opts.dataDir,
        }),
      );
      const running = await startTaskEngine(config, { purpose: 'task-engine serve' }).catch(
        (err: unknown) => {
          throw explainStartError(err, config);
        },
      );
      describeStart(io, config, running);
      await submitWelcomeJob(io, running);
      await runUntilSignal(io, running);
    });
}
