/**
 * The engine's configuration: one schema with defaults and descriptions (SPEC section 3).
 * Only `src/cli/` reads `process.env`; it hands the environment to {@link loadConfig}.
 */

import type { TracingConfig } from '../engine/tracing/tracing.js';

/** Roles one engine process may play. */
export const ROLES = ['api', 'controller', 'scheduler', 'worker'] as const;
export type Role = (typeof ROLES)[number];

/** Resolved configuration of one engine process. */
export interface EngineConfig {
  /** Listen address (`TASK_ENGINE_HOST`). */
  host: string;
  /** Listen port (`TASK_ENGINE_PORT`); 0 picks a free port. */
  port: number;
  /** PostgreSQL connection string; null means embedded PGlite (`DATABASE_URL`). */
  databaseUrl: string | null;
  /** Folder of the embedded database and default storage (`TASK_ENGINE_DATA_DIR`), absolute. */
  dataDir: string;
  /** Folder of workflow definitions (`TASK_ENGINE_WORKFLOWS_DIR`), absolute. */
  workflowsDir: string;
  /** Root of local media storage (`TASK_ENGINE_STORAGE_ROOT`), absolute. */
  storageRoot: string;
  /** Bootstrap admin client name and key (`TASK_ENGINE_ADMIN_CLIENT`, `TASK_ENGINE_ADMIN_API_KEY`). */
  adminClient: string | null;
  adminApiKey: string | null;
  /** Queues this process's workers take; null = every queue named by a loaded workflow. */
  workerQueues: string[] | null;
  /** Tasks run at once by this process (`TASK_ENGINE_WORKER_CONCURRENCY`), >= 1. */
  workerConcurrency: number;
  /**
   * Whether a worker loads the module handlers of the common workflows' tasks on its queues when
   * it starts (`TASK_ENGINE_PRELOAD_HANDLERS`, on/off; default on): first tasks do not wait for
   * their module, and a module that cannot load is logged at start. Absent = on.
   */
  preloadHandlers?: boolean;
  /** Roles this process plays (`TASK_ENGINE_ROLES`). */
  roles: Role[];
  /** pino log level (`TASK_ENGINE_LOG_LEVEL`): fatal, error, warn, info, debug, trace, silent. */
  logLevel: string;
  /** Process log format (`TASK_ENGINE_LOG_FORMAT`): `json` (one object per line) or `pretty` (pino-pretty). */
  logFormat: 'json' | 'pretty';
  /**
   * Seconds running attempts may go on finishing after a stop is asked for (SIGTERM), before they
   * are handed back (`TASK_ENGINE_SHUTDOWN_GRACE_SECONDS`, 0 to 86400; default 10).
   */
  shutdownGraceSeconds: number;
  /** Egress rules for outbound requests (`TASK_ENGINE_EGRESS`; src/engine/egress/rules.ts); '' = defaults. */
  egress: string;
  /**
   * Whether the scheduler leader vacuums and analyses the engine's tables where autovacuum does not
   * (`TASK_ENGINE_TABLE_UPKEEP`: `auto`, the default, or `off`; src/engine/maintenance/table-upkeep.ts).
   */
  tableUpkeep?: 'auto' | 'off';
  /** Whether `GET /metrics` and the in-process metrics exist (`TASK_ENGINE_METRICS`, on/off; default on). */
  metrics?: boolean;
  /** Bearer token that may read `GET /metrics` besides admin clients (`TASK_ENGINE_METRICS_TOKEN`); null = none. */
  metricsToken?: string | null;
  /**
   * OpenTelemetry tracing (docs/tracing.md), from the `OTEL_*` variables; absent = off (no SDK
   * started). Embedders and tests may give a `spanProcessor` instead of an exporter.
   */
  tracing?: TracingConfig;
}

/** One documented environment variable. */
export interface ConfigField {
  env: string;
  key: keyof EngineConfig;
  default: string;
  description: string;
}

/** Every environment variable the engine reads, in documentation order. */
export const CONFIG_FIELDS: readonly ConfigField[] = [
  { env: 'TASK_ENGINE_HOST', key: 'host', default: '127.0.0.1', description: 'listen address' },
  {
    env: 'TASK_ENGINE_PORT',
    key: 'port',
    default: '3000',
    description: 'listen port (0 to 65535; 0 picks a free port)',
  },
  {
    env: 'DATABASE_URL',
    key: 'databaseUrl',
    default: 'unset → embedded',
    description: 'PostgreSQL connection string (postgres:// or postgresql://)',
  },
  {
    env: 'TASK_ENGINE_DATA_DIR',
    key: 'dataDir',
    default: './.task-engine',
    description: 'embedded database and default storage live here',
  },
  {
    env: 'TASK_ENGINE_WORKFLOWS_DIR',
    key: 'workflowsDir',
    default: 'the bundled workflows/',
    description: 'workflow definitions',
  },
  {
    env: 'TASK_ENGINE_STORAGE_ROOT',
    key: 'storageRoot',
    default: '$TASK_ENGINE_DATA_DIR/storage',
    description: 'root of local media storage',
  },
  {
    env: 'TASK_ENGINE_ADMIN_CLIENT',
    key: 'adminClient',
    default: 'unset',
    description: 'at start, create or update this admin client…',
  },
  {
    env: 'TASK_ENGINE_ADMIN_API_KEY',
    key: 'adminApiKey',
    default: 'unset',
    description: '…with this key (at least 16 characters)',
  },
  {
    env: 'TASK_ENGINE_WORKER_QUEUES',
    key: 'workerQueues',
    default: 'every queue named by a loaded workflow',
    description: "queues this process's workers take (comma list)",
  },
  {
    env: 'TASK_ENGINE_WORKER_CONCURRENCY',
    key: 'workerConcurrency',
    default: '4',
    description: 'tasks run at once per process (1 to 1000)',
  },
  {
    env: 'TASK_ENGINE_PRELOAD_HANDLERS',
    key: 'preloadHandlers',
    default: 'on',
    description: "`off`: a worker loads each task handler's module when a task first needs it, not at start",
  },
  {
    env: 'TASK_ENGINE_ROLES',
    key: 'roles',
    default: 'api,controller,scheduler,worker',
    description: 'roles this process plays (comma list)',
  },
  {
    env: 'TASK_ENGINE_LOG_LEVEL',
    key: 'logLevel',
    default: 'info',
    description: 'process log level (fatal, error, warn, info, debug, trace, silent)',
  },
  {
    env: 'TASK_ENGINE_LOG_FORMAT',
    key: 'logFormat',
    default: 'json',
    description: 'process log format: json (one JSON object per line) or pretty (pino-pretty, for people)',
  },
  {
    env: 'TASK_ENGINE_SHUTDOWN_GRACE_SECONDS',
    key: 'shutdownGraceSeconds',
    default: '10',
    description:
      'seconds running task attempts may finish after SIGTERM before they are handed back (0 to 86400); a second SIGTERM hands them back at once',
  },
  {
    env: 'TASK_ENGINE_EGRESS',
    key: 'egress',
    default: '',
    description:
      'egress rules for outbound requests (comma list: deny-private, deny-loopback, allow-host=<name>, allow-cidr=<range>)',
  },
  {
    env: 'TASK_ENGINE_TABLE_UPKEEP',
    key: 'tableUpkeep',
    default: 'auto',
    description:
      "`auto`: the scheduler leader vacuums and analyses the engine's tables where autovacuum does not (embedded PGlite; a server or table with autovacuum off); `off`: never",
  },
  {
    env: 'TASK_ENGINE_METRICS',
    key: 'metrics',
    default: 'on',
    description: '`off` removes `GET /metrics` (404) and every in-process metric',
  },
  {
    env: 'TASK_ENGINE_METRICS_TOKEN',
    key: 'metricsToken',
    default: 'unset',
    description:
      'a bearer token (at least 16 characters) that may scrape `GET /metrics` besides admin clients',
  },
  {
    env: 'OTEL_EXPORTER_OTLP_ENDPOINT',
    key: 'tracing',
    default: 'unset',
    description: 'turns tracing on: OTLP/HTTP base URL of the collector (`/v1/traces` is added)',
  },
  {
    env: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
    key: 'tracing',
    default: 'unset',
    description: 'turns tracing on: the full OTLP/HTTP traces URL (wins over the base URL)',
  },
  {
    env: 'OTEL_TRACES_EXPORTER',
    key: 'tracing',
    default: 'unset',
    description: '`otlp` or `console` turns tracing on, `none` keeps it off whatever else is set',
  },
  {
    env: 'OTEL_SERVICE_NAME',
    key: 'tracing',
    default: 'task-engine',
    description: '`service.name` of the spans',
  },
  {
    env: 'OTEL_TRACES_SAMPLER',
    key: 'tracing',
    default: 'parentbased_always_on',
    description: "the SDK's sampler (with `OTEL_TRACES_SAMPLER_ARG`)",
  },
];
