/**
 * URLs in job logs: callback targets and semaphores are the client's own, but a log line needs
 * neither credentials nor query tokens.
 */

/**
 * A URL fit for a job log: scheme, host and path; no user or password; a query is shown as `?…`.
 * @returns the redacted URL, or `(invalid URL)`.
 */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}${u.search ? '?…' : ''}`;
  } catch {
    return '(invalid URL)';
  }
}
