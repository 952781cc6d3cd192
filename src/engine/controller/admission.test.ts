import assert from 'node:assert/strict';
import { it } from 'node:test';
import { admissionOrder, chooseJobs, mergeCandidates } from './admission.js';

const s = (max_jobs: number, priority_slots: number, priority_threshold = 5) => ({
  max_jobs,
  priority_slots,
  priority_threshold,
});
const q = (...priorities: number[]) => priorities.map((priority, i) => ({ id: i + 1, priority }));

it('chooseJobs fills free slots in queue order up to max_jobs', () => {
  assert.deepEqual(chooseJobs(q(5, 5, 5, 5), 0, s(2, 0)), [1, 2]);
  assert.deepEqual(chooseJobs(q(5, 5), 2, s(2, 0)), []);
});

it('chooseJobs keeps priority_slots for priority jobs (max_jobs 5, priority_slots 2)', () => {
  // Three non-priority jobs already started: only priority jobs may take the last two slots.
  assert.deepEqual(chooseJobs(q(8, 2, 8, 3, 1), 3, s(5, 2)), [2, 4]);
  // Nothing started: three general slots for anything, then two for priority work only.
  assert.deepEqual(chooseJobs(q(8, 8, 8, 8, 2), 0, s(5, 2)), [1, 2, 3, 5]);
});

it('chooseJobs skips an ineligible head instead of blocking behind it', () => {
  assert.deepEqual(chooseJobs(q(8, 3), 2, s(3, 1)), [2]);
});

it('chooseJobs treats priority == priority_threshold as a priority job', () => {
  assert.deepEqual(chooseJobs(q(6, 5), 1, s(2, 1, 5)), [2]);
});

const c = (id: number, priority: number, top_of_queue = false, queued_at: number | null = 0) => ({
  id,
  priority,
  top_of_queue,
  queued_at: queued_at === null ? null : new Date(queued_at),
});

it('admissionOrder: top_of_queue, then priority, then queued_at (none last), then id', () => {
  const sorted = [
    c(1, 5, false, 10),
    c(2, 5, true, 20),
    c(3, 1, false, 30),
    c(4, 1, false, null),
    c(5, 1, false, 30),
  ]
    .sort(admissionOrder)
    .map((j) => j.id);
  assert.deepEqual(sorted, [2, 3, 5, 4, 1]);
});

it('mergeCandidates keeps each job once, in admission order', () => {
  // The general heads, then the priority heads (which overlap them).
  const merged = mergeCandidates([
    c(1, 8, false, 1),
    c(2, 3, false, 2),
    c(2, 3, false, 2),
    c(3, 2, false, 3),
  ]);
  assert.deepEqual(
    merged.map((j) => j.id),
    [3, 2, 1],
  );
});
