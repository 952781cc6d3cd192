/**
 * OpenTelemetry traces of jobs and attempts (docs/tracing.md), with the official SDK.
 *
 * Span model: one span per job (`job <workflow>`, from submission to the job's end) and, under
 * it, one span per task attempt (`task <name>`). Jobs outlive processes, so the job span is never
 * held in memory: at submission its ids are made (continuing an incoming W3C `traceparent`) and
 * stored in `job_traces`; each attempt span is parented on a remote context built from those ids
 * (returned with the task by the worker's claim) by whichever worker runs it; and whichever
 * process writes the job's end notes it, and after that transaction re-creates the job span with
 * the stored ids and submission time, ends it and exports it, once (`job_traces.ended`, marked in
 * batches: {@link EngineTracing.jobsEnded}).
 *
 * Each engine has its own tracer provider (never the global one), so several engines in one
 * process stay apart. With tracing off the engine has no {@link EngineTracing} at all.
 */
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  isSpanContextValid,
  trace,
  type Span,
  type SpanContext,
  type Tracer,
} from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  RandomIdGenerator,
  type IdGenerator,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { Queryable } from '../../store/executor.js';
import { endJobTraces, readJobTrace, type EndedJobTraceRow } from '../../store/queries/job-traces.js';

/**
 * The tracing settings (`EngineConfig.tracing`; read from the `OTEL_*` variables by loadConfig).
 * Absent: tracing is off.
 */
export interface TracingConfig {
  /** Where spans go: `otlp` (OTLP/HTTP, JSON bodies, to {@link otlpUrl}) or `console` (stdout). */
  exporter: 'otlp' | 'console';
  /** The OTLP/HTTP traces URL (e.g. `http://collector:4318/v1/traces`); the SDK's default when unset. */
  otlpUrl?: string;
  /** `service.name` of the spans (`OTEL_SERVICE_NAME`, default `task-engine`). */
  serviceName: string;
  /**
   * A span processor used instead of {@link exporter} (embedding, tests: an `InMemorySpanExporter`
   * behind a `SimpleSpanProcessor`).
   */
  spanProcessor?: SpanProcessor;
}

/** A job's trace ids as stored in `job_traces` (lowercase hex). */
export interface JobTraceIds {
  /** 32 hex digits. */
  traceId: string;
  /** The job span's id, 16 hex digits. */
  spanId: string;
  /** The incoming `traceparent`'s span, or null for a root job span. */
  parentSpanId: string | null;
  /** W3C trace flags (bit 0: sampled). */
  traceFlags: number;
}

/** A job span's stored ids as a claim returns them with the task (`job_traces`). */
export interface StoredJobSpan {
  /** 32 hex digits. */
  traceId: string;
  /** The job span's id, 16 hex digits. */
  spanId: string;
  /** W3C trace flags (bit 0: sampled). */
  traceFlags: number;
}

/** What an attempt span is about. */
export interface AttemptSpanInfo {
  jobId: number;
  client: string;
  workflow: string;
  task: string;
  queue: string;
  /** 1-based attempt number. */
  attempt: number;
}

/** A running attempt span. */
export interface AttemptSpan {
  /** W3C `traceparent` of the attempt span (for `TRACEPARENT` of `exec` children, `http` headers). */
  readonly traceparent: string;
  /** Ends the span with `outcome` (`succeeded`, `failed`, `timeout`, …); status ERROR unless `succeeded`. */
  end(outcome: string, error?: unknown): void;
}

/** The tracing of one engine (see the module comment); `ctx.tracing`. */
export interface EngineTracing {
  /**
   * Makes the ids of a new job's trace: a new trace, or the trace of `traceparent` (a W3C header
   * value; anything malformed is ignored) with its span as the job span's parent. The configured
   * sampler decides the sampled flag.
   */
  newJobTrace(traceparent: unknown, submittedAt: Date): JobTraceIds;
  /**
   * Starts the span of an attempt of job `info.jobId`, parented on the stored job span `job` (its
   * ids as the claim read them with the task: no statement of its own). Synchronous; an unsampled
   * job gets a non-recording span (its `traceparent` still carries the trace, flags `00`).
   * @returns the span, or null when `job` is null (the job has no trace: submitted with tracing off).
   */
  startAttempt(job: StoredJobSpan | null, info: AttemptSpanInfo): AttemptSpan | null;
  /**
   * Notes that the transaction of the caller writes the end of `jobIds` at `now` (the job spans'
   * end time). Synchronous and writes nothing: at most {@link JOB_END_FLUSH_MS} later, after that
   * transaction has committed, one statement for every job noted meanwhile marks the sampled
   * traces of those that have ended (`job_traces.ended`, so each is exported once across every
   * engine) and their job spans are exported. A job whose end is not visible yet (its transaction
   * still open) is looked at again on the next flushes, up to {@link JOB_END_MAX_WAITS} times; a
   * rolled-back end is written again by its retry, which notes the job again.
   */
  jobsEnded(jobIds: Iterable<number>, now: Date): void;
  /**
   * Runs the pending job-end flushes now (tests, shutdown).
   * @returns when every job noted before the call has been looked at once. Never rejects.
   */
  flushJobEnds(): Promise<void>;
  /** Flushes the job ends and the spans not exported yet and stops the provider. Never throws. */
  shutdown(): Promise<void>;
}

/** W3C `traceparent` version 00: `00-<trace-id>-<parent-id>-<flags>`. */
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * Reads a W3C `traceparent` header value (version 00; trimmed, case-insensitive).
 * @returns its span context (remote), or null when it is not one (all-zero ids included).
 */
export function parseTraceparent(value: unknown): SpanContext | null {
  if (typeof value !== 'string') return null;
  const m = TRACEPARENT.exec(value.trim().toLowerCase());
  if (!m) return null;
  const sc: SpanContext = {
    traceId: m[1]!,
    spanId: m[2]!,
    traceFlags: parseInt(m[3]!, 16) & 0xff,
    isRemote: true,
  };
  return isSpanContextValid(sc) ? sc : null;
}

/** Formats a W3C `traceparent` (version 00) of a trace id, span id and flags. */
export function formatTraceparent(traceId: string, spanId: string, traceFlags: number): string {
  return `00-${traceId}-${spanId}-${(traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

/**
 * Random ids, except that the next span (and trace) id can be set for one synchronous
 * `startSpan`: how a job span is re-created with its stored ids.
 */
class StoredIdGenerator implements IdGenerator {
  private readonly random = new RandomIdGenerator();
  nextTraceId: string | null = null;
  nextSpanId: string | null = null;
  generateTraceId(): string {
    const id = this.nextTraceId ?? this.random.generateTraceId();
    this.nextTraceId = null;
    return id;
  }
  generateSpanId(): string {
    const id = this.nextSpanId ?? this.random.generateSpanId();
    this.nextSpanId = null;
    return id;
  }
}

/**
 * Reads the stored ids of job `jobId`'s span (`job_traces`, by primary key; no locks): for an
 * attempt claimed without them, and for callbacks.
 * @returns them, or null when the job has no trace (submitted with tracing off).
 * @throws the driver's error.
 */
export async function readStoredJobSpan(db: Queryable, jobId: number): Promise<StoredJobSpan | null> {
  const row = await readJobTrace.first(db, { jobId });
  return row ? { traceId: row.trace_id, spanId: row.span_id, traceFlags: row.trace_flags } : null;
}

/** The job span's name: `job <workflow>`. */
const jobSpanName = (workflow: string): string => `job ${workflow}`;

/** How long a noted job end waits before its flush (ms): the ends of that window share one statement. */
export const JOB_END_FLUSH_MS = 100;

/** How many flushes a noted job whose end is not visible yet is looked at again before it is dropped. */
export const JOB_END_MAX_WAITS = 50;

/**
 * Creates an engine's tracing: its own tracer provider with `config.spanProcessor`, or a batch
 * processor in front of the OTLP/HTTP or console exporter. The sampler is the SDK's from
 * `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` (default `parentbased_always_on`); the batch
 * processor's limits are the SDK's from `OTEL_BSP_*`. `db` is where job ends are marked
 * ({@link EngineTracing.jobsEnded}; the engine's executor).
 */
export function createEngineTracing(config: TracingConfig, version: string, db: Queryable): EngineTracing {
  const ids = new StoredIdGenerator();
  const processor =
    config.spanProcessor ??
    new BatchSpanProcessor(
      config.exporter === 'console'
        ? new ConsoleSpanExporter()
        : new OTLPTraceExporter(config.otlpUrl ? { url: config.otlpUrl } : {}),
    );
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: config.serviceName,
      [ATTR_SERVICE_VERSION]: version,
    }),
    idGenerator: ids,
    spanProcessors: [processor],
  });
  const tracer: Tracer = provider.getTracer('task-engine', version);

  // Job ends noted and not yet looked at: job id → the end time and how often it was not visible.
  const pending = new Map<number, { at: Date; waits: number }>();
  let timer: ReturnType<typeof setTimeout> | null = null;
  let closed = false;
  let chain: Promise<void> = Promise.resolve();
  const clearTimer = (): void => {
    if (timer) clearTimeout(timer);
    timer = null;
  };
  const schedule = (): void => {
    if (timer || closed || pending.size === 0) return;
    timer = setTimeout(() => {
      timer = null;
      void flush();
    }, JOB_END_FLUSH_MS);
    timer.unref?.();
  };
  /** One statement for the ends noted so far, then their spans; serialised; never rejects. */
  const flush = (): Promise<void> => {
    chain = chain
      .then(async () => {
        if (pending.size === 0) return;
        const batch = new Map(pending);
        pending.clear();
        let rows: EndedJobTraceRow[];
        try {
          rows = await endJobTraces.rows(db, { jobIds: [...batch.keys()] });
        } catch {
          // The database did not answer: every end of the batch waits for the next flush.
          rows = [...batch.keys()].map((id) => ({ waiting: true, job_id: id }) as EndedJobTraceRow);
        }
        for (const row of rows) {
          const id = Number(row.job_id);
          const noted = batch.get(id);
          if (!noted) continue;
          if (row.waiting) {
            if (noted.waits < JOB_END_MAX_WAITS && !pending.has(id))
              pending.set(id, { at: noted.at, waits: noted.waits + 1 });
          } else exportJobSpan(row, noted.at);
        }
        schedule();
      })
      .catch(() => undefined);
    return chain;
  };
  /** Re-creates, ends at `end` and exports the job span of a trace row just marked ended. */
  const exportJobSpan = (row: EndedJobTraceRow, end: Date): void => {
    if ((row.trace_flags & TraceFlags.SAMPLED) === 0) return;
    const parent = row.parent_span_id
      ? trace.setSpanContext(ROOT_CONTEXT, {
          traceId: row.trace_id,
          spanId: row.parent_span_id,
          traceFlags: row.trace_flags,
          isRemote: true,
        })
      : ROOT_CONTEXT;
    const outcome = row.queue_state === 'broken' ? 'broken' : row.failed ? 'failed' : 'completed';
    // startSpan is synchronous: the ids set here are the ones this span takes.
    ids.nextTraceId = row.trace_id;
    ids.nextSpanId = row.span_id;
    const span = tracer.startSpan(
      jobSpanName(row.workflow),
      {
        kind: SpanKind.INTERNAL,
        startTime: row.created_at,
        attributes: {
          'job.id': Number(row.job_id),
          workflow: row.workflow,
          client: row.client,
          outcome,
        },
      },
      parent,
    );
    ids.nextTraceId = null;
    ids.nextSpanId = null;
    span.setStatus(
      outcome === 'completed'
        ? { code: SpanStatusCode.OK }
        : { code: SpanStatusCode.ERROR, message: `job ${outcome}` },
    );
    span.end(end);
  };

  return {
    newJobTrace(traceparent, submittedAt) {
      const incoming = parseTraceparent(traceparent);
      const parent = incoming ? trace.setSpanContext(ROOT_CONTEXT, incoming) : ROOT_CONTEXT;
      // A span started only for its ids and the sampler's decision; never ended (nothing is
      // exported for it): the job span is re-created with these ids when the job ends.
      const span = tracer.startSpan('job', { startTime: submittedAt, kind: SpanKind.INTERNAL }, parent);
      const sc = span.spanContext();
      return {
        traceId: sc.traceId,
        spanId: sc.spanId,
        parentSpanId: incoming?.spanId ?? null,
        traceFlags: sc.traceFlags,
      };
    },

    startAttempt(job, info) {
      if (!job) return null;
      const parent = trace.setSpanContext(ROOT_CONTEXT, {
        traceId: job.traceId,
        spanId: job.spanId,
        traceFlags: job.traceFlags,
        isRemote: true,
      });
      const span: Span = tracer.startSpan(
        `task ${info.task}`,
        {
          kind: SpanKind.INTERNAL,
          attributes: {
            'job.id': info.jobId,
            workflow: info.workflow,
            client: info.client,
            task: info.task,
            queue: info.queue,
            attempt: info.attempt,
          },
        },
        parent,
      );
      const sc = span.spanContext();
      return {
        traceparent: formatTraceparent(sc.traceId, sc.spanId, sc.traceFlags),
        end(outcome, error) {
          span.setAttribute('outcome', outcome);
          if (outcome === 'succeeded') span.setStatus({ code: SpanStatusCode.OK });
          else {
            const message = error instanceof Error ? error.message : outcome;
            span.setStatus({ code: SpanStatusCode.ERROR, message });
          }
          span.end();
        },
      };
    },

    jobsEnded(jobIds, now) {
      for (const id of jobIds) pending.set(Number(id), { at: now, waits: 0 });
      schedule();
    },

    flushJobEnds() {
      clearTimer();
      return flush();
    },

    async shutdown() {
      closed = true;
      clearTimer();
      // Once for the ends noted so far, once more for those whose transaction was still open.
      await flush();
      if (pending.size > 0) await flush();
      await provider.shutdown().catch(() => undefined);
    },
  };
}
