/**
 * Reading a `GET /metrics` reply in tests with `parse-prometheus-text-format`, as one number per
 * (family, labels).
 *
 * That parser merges a labelled histogram's series into one (it keeps the buckets of the last
 * label set and drops `_count` / `_sum`), so histograms are read a second time from the text
 * without their `# HELP` / `# TYPE` lines, where `<name>_count` and `<name>_sum` parse as plain
 * families of their own, labels intact.
 */
import parsePrometheusTextFormat, { type ParsedFamily } from 'parse-prometheus-text-format';

/** A parsed scrape. */
export interface Scrape {
  families: ParsedFamily[];
  /**
   * The value of the samples of `name` whose labels include `labels`, summed (0 when none). For a
   * histogram, its `_count` (or `_sum` with `field: 'sum'`).
   */
  value(name: string, labels?: Record<string, string>, field?: 'count' | 'sum'): number;
  /** Whether the family exists. */
  has(name: string): boolean;
}

/** Parses exposition text (throws on a line the format does not allow). */
export function parseScrape(text: string): Scrape {
  const families = parsePrometheusTextFormat(text);
  const histograms = new Set(families.filter((f) => f.type === 'HISTOGRAM').map((f) => f.name));
  const untyped = parsePrometheusTextFormat(
    text
      .split('\n')
      .filter((line) => {
        const m = /^# (?:HELP|TYPE) (\S+)/.exec(line);
        return !(m && histograms.has(m[1]!));
      })
      .join('\n'),
  );
  const sum = (fams: ParsedFamily[], name: string, labels: Record<string, string>): number => {
    let total = 0;
    for (const fam of fams.filter((f) => f.name === name))
      for (const m of fam.metrics) {
        const l = m.labels ?? {};
        if (Object.entries(labels).every(([k, v]) => l[k] === v)) total += Number(m.value ?? 0);
      }
    return total;
  };
  return {
    families,
    has: (name) => families.some((f) => f.name === name),
    value(name, labels = {}, field = 'count') {
      if (histograms.has(name)) return sum(untyped, `${name}_${field}`, labels);
      return sum(families, name, labels);
    },
  };
}
