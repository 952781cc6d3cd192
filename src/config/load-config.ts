import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseEgressRules } from '../engine/egress/rules.js';
import { ROLES, type EngineConfig, type Role } from './schema.js';
import type { TracingConfig } from '../engine/tracing/tracing.js';

/** The bundled workflow definitions folder (`<package>/workflows`). */
export const BUNDLED_WORKFLOWS_DIR = fileURLToPath(new URL('../../workflows/', import.meta.url));

/** Thrown by {@link loadConfig}; `problems` names every bad field. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration: ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const QUEUE_NAME = /^[a-z][a-z0-9_-]{0,62}$/;
const CLIENT_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/**
 * Builds the configuration from environment variables (SPEC section 3). Pure: reads nothing but
 * its arguments.
 * @param env - the environment (`process.env` from the CLI, a literal in tests).
 * @param cwd - folder that relative paths are resolved against.
 * @throws {@link ConfigError} naming every bad field at once.
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  cwd: string = process.cwd(),
): EngineConfig {
  const problems: string[] = [];
  const get = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };
  const int = (name: string, def: number, min: number, max: number): number => {
    const raw = get(name);
    if (raw === undefined) return def;
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      problems.push(`${name} must be a whole number from ${min} to ${max} (got "${raw}")`);
      return def;
    }
    return Number(raw);
  };
  const list = (name: string): string[] | undefined =>
    get(name)
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean);

  const host = get('TASK_ENGINE_HOST') ?? '127.0.0.1';
  const port = int('TASK_ENGINE_PORT', 3000, 0, 65535);

  let databaseUrl = get('DATABASE_URL') ?? null;
  if (databaseUrl !== null) {
    try {
      const u = new URL(databaseUrl);
      if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new Error('protocol');
    } catch {
      problems.push('DATABASE_URL must be a postgres:// or postgresql:// connection string');
      databaseUrl = null;
    }
  }

  const dataDir = path.resolve(cwd, get('TASK_ENGINE_DATA_DIR') ?? './.task-engine');
  const workflowsDir = path.resolve(cwd, get('TASK_ENGINE_WORKFLOWS_DIR') ?? BUNDLED_WORKFLOWS_DIR);
  const storageRoot = path.resolve(cwd, get('TASK_ENGINE_STORAGE_ROOT') ?? path.join(dataDir, 'storage'));

  const adminClient = get('TASK_ENGINE_ADMIN_CLIENT') ?? null;
  const adminApiKey = get('TASK_ENGINE_ADMIN_API_KEY') ?? null;
  if (adminClient !== null && !CLIENT_NAME.test(adminClient))
    problems.push('TASK_ENGINE_ADMIN_CLIENT must match [a-z0-9][a-z0-9_-]{0,62}');
  if ((adminClient === null) !== (adminApiKey === null))
    problems.push('TASK_ENGINE_ADMIN_CLIENT and TASK_ENGINE_ADMIN_API_KEY must be set together');
  if (adminApiKey !== null && adminApiKey.length < 16)
    problems.push('TASK_ENGINE_ADMIN_API_KEY must be at least 16 characters');

  const workerQueues = list('TASK_ENGINE_WORKER_QUEUES') ?? null;
  for (const q of workerQueues ?? [])
    if (!QUEUE_NAME.test(q))
      problems.push(`TASK_ENGINE_WORKER_QUEUES: "${q}" is not a queue name ([a-z][a-z0-9_-]*)`);

  const workerConcurrency = int('TASK_ENGINE_WORKER_CONCURRENCY', 4, 1, 1000);
  const preloadRaw = (get('TASK_ENGINE_PRELOAD_HANDLERS') ?? 'on').toLowerCase();
  if (preloadRaw !== 'on' && preloadRaw !== 'off')
    problems.push(`TASK_ENGINE_PRELOAD_HANDLERS must be on or off (got "${preloadRaw.slice(0, 32)}")`);

  const rolesRaw = list('TASK_ENGINE_ROLES') ?? [...ROLES];
  const roles: Role[] = [];
  for (const r of rolesRaw) {
    if ((ROLES as readonly string[]).includes(r)) roles.push(r as Role);
    else problems.push(`TASK_ENGINE_ROLES: "${r}" is not a role (accepted: ${ROLES.join(', ')})`);
  }
  if (rolesRaw.length === 0) problems.push(`TASK_ENGINE_ROLES must name at least one of ${ROLES.join(', ')}`);

  const logLevel = get('TASK_ENGINE_LOG_LEVEL') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel))
    problems.push(`TASK_ENGINE_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')} (got "${logLevel}")`);

  const logFormat = get('TASK_ENGINE_LOG_FORMAT') ?? 'json';
  if (logFormat !== 'json' && logFormat !== 'pretty')
    problems.push(`TASK_ENGINE_LOG_FORMAT must be json or pretty (got "${logFormat}")`);

  const shutdownGraceSeconds = int('TASK_ENGINE_SHUTDOWN_GRACE_SECONDS', 10, 0, 86_400);
  const egress = get('TASK_ENGINE_EGRESS') ?? '';
  try {
    parseEgressRules(egress);
  } catch (err) {
    problems.push(`TASK_ENGINE_EGRESS: ${(err as Error).message}`);
  }

  const metricsRaw = (get('TASK_ENGINE_METRICS') ?? 'on').toLowerCase();
  if (metricsRaw !== 'on' && metricsRaw !== 'off')
    problems.push(`TASK_ENGINE_METRICS must be on or off (got "${metricsRaw.slice(0, 32)}")`);
  const metricsToken = get('TASK_ENGINE_METRICS_TOKEN') ?? null;
  if (metricsToken !== null && (metricsToken.length < 16 || /\s/.test(metricsToken)))
    problems.push('TASK_ENGINE_METRICS_TOKEN must be at least 16 characters without spaces');

  const tableUpkeep = (get('TASK_ENGINE_TABLE_UPKEEP') ?? 'auto').toLowerCase();
  if (tableUpkeep !== 'auto' && tableUpkeep !== 'off')
    problems.push(`TASK_ENGINE_TABLE_UPKEEP must be auto or off (got "${tableUpkeep.slice(0, 32)}")`);

  const tracing = readTracing(get, problems);

  if (problems.length > 0) throw new ConfigError(problems);
  return {
    host,
    port,
    databaseUrl,
    dataDir,
    workflowsDir,
    storageRoot,
    adminClient,
    adminApiKey,
    workerQueues,
    workerConcurrency,
    preloadHandlers: preloadRaw !== 'off',
    roles: [...new Set(roles)],
    logLevel,
    logFormat: logFormat === 'pretty' ? 'pretty' : 'json',
    shutdownGraceSeconds,
    egress,
    metrics: metricsRaw !== 'off',
    metricsToken,
    tableUpkeep: tableUpkeep === 'off' ? 'off' : 'auto',
    ...(tracing ? { tracing } : {}),
  };
}

/**
 * Reads the OpenTelemetry variables (docs/tracing.md): tracing is on when `OTEL_TRACES_EXPORTER`
 * is `otlp` or `console`, or (unset) when an OTLP endpoint is set; `none` keeps it off.
 * @returns the tracing settings, or undefined when tracing is off.
 */
function readTracing(
  get: (name: string) => string | undefined,
  problems: string[],
): TracingConfig | undefined {
  const exporterRaw = get('OTEL_TRACES_EXPORTER')?.toLowerCase();
  const tracesEndpoint = get('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  const baseEndpoint = get('OTEL_EXPORTER_OTLP_ENDPOINT');
  if (exporterRaw !== undefined && !['otlp', 'console', 'none'].includes(exporterRaw)) {
    problems.push(`OTEL_TRACES_EXPORTER must be otlp, console or none (got "${exporterRaw.slice(0, 32)}")`);
    return undefined;
  }
  if (exporterRaw === 'none') return undefined;
  if (exporterRaw === undefined && !tracesEndpoint && !baseEndpoint) return undefined;
  let otlpUrl: string | undefined;
  const raw = tracesEndpoint ?? (baseEndpoint ? `${baseEndpoint.replace(/\/+$/, '')}/v1/traces` : undefined);
  if (raw !== undefined) {
    try {
      const u = new URL(raw);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('protocol');
      otlpUrl = u.toString();
    } catch {
      problems.push(
        `${tracesEndpoint ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' : 'OTEL_EXPORTER_OTLP_ENDPOINT'} must be an http(s) URL`,
      );
    }
  }
  return {
    exporter: exporterRaw === 'console' ? 'console' : 'otlp',
    serviceName: get('OTEL_SERVICE_NAME') ?? 'task-engine',
    ...(otlpUrl ? { otlpUrl } : {}),
  };
}
