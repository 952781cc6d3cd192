/**
 * Layout rules that the type checker and ESLint cannot see: no SQL statement text in a string
 * literal of `src/` outside `src/store/` (issue 8: every statement the engine runs is a named query
 * in `src/store/queries/`). Migrations are SQL files under `src/store/` and so are not scanned.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Files that may still hold SQL text while their statements move into `src/store/queries/`. Each
 * entry goes once its file is clean (the test also fails when a listed file has no SQL left, so
 * the list only shrinks). Paths relative to the repository root.
 */
const STILL_HOLDING_SQL: readonly string[] = [
  // Empty: on main every statement now lives in src/store/. Add a file here only while moving its
  // statements, and take it off in the same change that empties it.
];

/** What counts as an SQL statement in a string: a statement keyword followed by its clause. */
const SQL_STATEMENT = [
  /\bSELECT\b[\s\S]*\bFROM\b/i,
  /\bINSERT\s+INTO\b/i,
  /\bUPDATE\s+[a-z_][a-z0-9_]*(\s+[a-z_][a-z0-9_]*)?\s+SET\b/i,
  /\bDELETE\s+FROM\b/i,
  /\bWITH\s+(RECURSIVE\s+)?[a-z_][a-z0-9_]*\s+AS\s*(NOT\s+)?(MATERIALIZED\s+)?\(/i,
  /\bSELECT\s+([a-z_][a-z0-9_.]*\s*\(|1\b|\*)/i,
  /\bpg_notify\s*\(/i,
  /\b(LISTEN|NOTIFY|UNLISTEN)\s+[a-z_"]/,
  /\bpg_(try_)?advisory(_xact)?_(un)?lock\b/,
];

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(p));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The text of every string and template literal of a file (template parts joined with `?`). */
function stringLiterals(file: string): { line: number; text: string }[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const found: { line: number; text: string }[] = [];
  const visit = (node: ts.Node): void => {
    let text: string | null = null;
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) text = node.text;
    else if (ts.isTemplateExpression(node))
      text = [node.head.text, ...node.templateSpans.map((s) => s.literal.text)].join('?');
    if (text !== null) {
      found.push({ line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1, text });
      if (ts.isTemplateExpression(node)) return;
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** Files of `src/` outside `src/store/` (unit tests beside the code included) with SQL text. */
function filesWithSql(): Map<string, string[]> {
  const result = new Map<string, string[]>();
  for (const file of sourceFiles(path.join(ROOT, 'src'))) {
    const rel = path.relative(ROOT, file).split(path.sep).join('/');
    if (rel.startsWith('src/store/')) continue;
    const hits = stringLiterals(file)
      .filter((s) => SQL_STATEMENT.some((re) => re.test(s.text)))
      .map((s) => `${rel}:${s.line}: ${s.text.replace(/\s+/g, ' ').trim().slice(0, 80)}`);
    if (hits.length) result.set(rel, hits);
  }
  return result;
}

describe('source layout', () => {
  it('has no SQL statement text in src/ outside src/store/ (besides the listed files)', () => {
    const found = filesWithSql();
    const unexpected = [...found].filter(([rel]) => !STILL_HOLDING_SQL.includes(rel)).flatMap(([, h]) => h);
    assert.deepEqual(
      unexpected,
      [],
      `SQL belongs in src/store/queries/ (a defineQuery constant), not in:\n${unexpected.join('\n')}`,
    );
  });

  it('lists only files that still hold SQL, so the allow-list only shrinks', () => {
    const found = filesWithSql();
    const clean = STILL_HOLDING_SQL.filter((rel) => !found.has(rel));
    assert.deepEqual(clean, [], `these files have no SQL left: take them off STILL_HOLDING_SQL`);
  });
});
