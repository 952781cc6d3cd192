/**
 * The egress rules applied where a URL is known at submission: a job's callback targets
 * (`parameters.rest_endpoints`) and its `semaphore_url`, so a refused address is a 400 at once
 * rather than a failure at delivery (where the rules are checked again on every connection).
 */
import { EngineError } from '../../errors/catalogue.js';
import { callbackTargets } from '../callbacks/bodies.js';
import { checkEgressUrl } from '../egress/guarded-fetch.js';
import type { EgressPolicy } from '../egress/rules.js';

/**
 * Checks each `{field, url}` against `policy` (DNS answers included).
 * @throws {EngineError} `VALIDATION_FAILED` (400) naming the field, the URL's host and the rule.
 */
export async function assertEgressAllowed(
  policy: EgressPolicy,
  urls: readonly { field: string; url: string }[],
): Promise<void> {
  for (const { field, url } of urls) {
    const reason = await checkEgressUrl(policy, url);
    if (reason)
      throw new EngineError(
        'VALIDATION_FAILED',
        `${field} is refused by the egress rules: ${reason}; the engine only sends requests to addresses TASK_ENGINE_EGRESS allows (link-local and metadata addresses never)`,
      );
  }
}

/** The URLs of a submission to check: its callback targets and its semaphore URL. */
export function submissionUrls(
  parameters: Record<string, unknown>,
  semaphoreUrl: string | null,
): { field: string; url: string }[] {
  const out = callbackTargets(parameters).map((url, i) => ({
    field: `parameters.rest_endpoints[${i}]`,
    url,
  }));
  if (semaphoreUrl) out.push({ field: 'job.semaphore_url', url: semaphoreUrl });
  return out;
}
