/**
 * An {@link Executor} that times every statement into `task_engine_db_query_duration_seconds`
 * under its query-module name ({@link queryNameOf}; `other` for text no module declared, such as
 * migrations), so the label set is as small as the list of statements. Failed statements are
 * timed too. Transactions time their statements the same way; `BEGIN`/`COMMIT` are not counted.
 */
import type { Histogram } from 'prom-client';
import type { Executor, Queryable } from '../../store/executor.js';
import { queryNameOf } from '../../store/queries/define-query.js';

/** Wraps `db` so each statement is observed in `histogram` (label `query`). */
export function timedExecutor(db: Executor, histogram: Histogram<'query'>): Executor {
  // One child per statement name: observing through it skips hashing the label set.
  const children = new Map<string, ReturnType<Histogram<'query'>['labels']>>();
  const childOf = (sql: string) => {
    const name = queryNameOf(sql) ?? 'other';
    let c = children.get(name);
    if (!c) children.set(name, (c = histogram.labels(name)));
    return c;
  };
  const timed = (q: Queryable): Queryable['query'] =>
    async function query(sql, params) {
      const t0 = performance.now();
      try {
        return await q.query(sql, params);
      } finally {
        childOf(sql).observe((performance.now() - t0) / 1000);
      }
    };
  const wrapped: Executor = Object.create(db) as Executor;
  return Object.assign(wrapped, {
    kind: db.kind,
    query: timed(db),
    exec: (sql: string) => db.exec(sql),
    transaction: <T>(fn: (tx: Queryable) => Promise<T>) =>
      db.transaction((tx) => fn({ query: timed(tx), exec: (sql: string) => tx.exec(sql) })),
    listen: db.listen.bind(db),
    tryLock: db.tryLock.bind(db),
    close: db.close.bind(db),
    ...(db.poolStats ? { poolStats: db.poolStats.bind(db) } : {}),
  });
}
