// Imported first by run-at-timezone.test.ts: the process runs in New York time from here on.
process.env.TZ = 'America/New_York';
