import { openStore } from '../src/store/open-store.js';
import { computePositions, setPositionMethod } from '../src/engine/jobs/records.js';
const db = await openStore({ databaseUrl: 'postgres://postgres@127.0.0.1:5432/te_bench_listings' });
const { rows } = await db.query<{ id: number; queue_state: any }>(
  `(SELECT id, queue_state FROM jobs WHERE queue_state <> 'completed' ORDER BY random() LIMIT 40) UNION ALL (SELECT id, queue_state FROM jobs ORDER BY id DESC LIMIT 10)`);
for (let round = 0; round < 3; round++) {
  setPositionMethod('window');
  let t = performance.now();
  const a = await computePositions(db, rows);
  const ta = performance.now() - t;
  setPositionMethod('ranges');
  t = performance.now();
  const b = await computePositions(db, rows);
  const tb = performance.now() - t;
  let diff = 0;
  for (const r of rows) if (a.get(Number(r.id)) !== b.get(Number(r.id))) { diff++; if (diff < 5) console.log('diff', r, a.get(Number(r.id)), b.get(Number(r.id))); }
  console.log(`window ${ta.toFixed(1)} ms, ranges ${tb.toFixed(1)} ms, ${rows.length} rows, ${diff} differ`);
}
const ten = rows.slice(40);
let t = performance.now();
for (let i = 0; i < 20; i++) await computePositions(db, ten);
console.log(`newest 10: ${((performance.now() - t) / 20).toFixed(2)} ms each`);
await db.close();
