/** Shapes shared by the parts of the `demo` command: its options, its result, the API replies it reads. */

/** Options of the `demo` command. */
export interface DemoOptions {
  url?: string;
  client?: string;
  apiKey?: string;
  /** Length of the test video, seconds (default 10). */
  seconds?: string;
  /** `WIDTHxHEIGHT` of the test video (default 640x360). */
  size?: string;
  /** Storage root of the engine (when it runs elsewhere on this machine). */
  storageRoot?: string;
  /** Give up after this many seconds (default 600). */
  timeout?: string;
  /** Force plain line output even on a terminal. */
  plain?: boolean;
}

/** What a demo run produced (returned for tests). */
export interface DemoResult {
  jobId: number;
  job: JobReply;
  callbacks: unknown[];
  /** Absolute folder of the outputs. */
  outputDir: string;
  /** Absolute path of the active master playlist. */
  manifest: string;
  files: string[];
}

/** A task as `GET /jobs/<id>` returns it. */
export interface TaskReply {
  id: number;
  name: string;
  queue: string;
  state: string;
  attempts: number;
  error: string | null;
  /** 0 to 1 as the task's handler reported it; null before it reports (or before it starts). */
  progress?: number | null;
  progress_message?: string | null;
}
/** A job as `GET /jobs/<id>` returns it. */
export interface JobReply {
  id: number;
  queue_state: string;
  failed: boolean;
  tasks?: TaskReply[];
}
