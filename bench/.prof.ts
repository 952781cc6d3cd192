import { openStore } from '../src/store/open-store.js';
import { readWaitingJobs, countQueuedByClient, readAdmissionState } from '../src/store/queries/admission.js';
import { listQueuedJobs } from '../src/store/queries/jobs.js';
const db = await openStore({ databaseUrl: 'postgres://postgres@127.0.0.1:5432/te_bench_listings' });
for (let i = 0; i < 3; i++) {
  let t = performance.now();
  const rows = await listQueuedJobs.rows(db, { limit: 1000 });
  const a = performance.now() - t; t = performance.now();
  await readWaitingJobs.rows(db, { ids: rows.map((r) => Number(r.id)), ranked: false });
  const b = performance.now() - t; t = performance.now();
  await countQueuedByClient.rows(db, {});
  const c = performance.now() - t; t = performance.now();
  await readAdmissionState.rows(db, {});
  const d = performance.now() - t;
  console.log(`list ${a.toFixed(1)} waitingJobs ${b.toFixed(1)} countQueuedByClient ${c.toFixed(1)} admissionState ${d.toFixed(1)}`);
}
await db.close();
