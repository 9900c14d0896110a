// The docs a newcomer reads point only at files that exist in this repository: every relative link of README.md,
// docs/*.md, bench/README.md and the examples' READMEs resolves, and none cites a path outside the checkout
// (`../shared/...`, a note that is not shipped).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers.ts';

function markdownFiles(): string[] {
  const docs = readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => path.join('docs', f));
  const examples = readdirSync(path.join(ROOT, 'examples')).map((d) => path.join('examples', d, 'README.md'));
  return ['README.md', path.join('bench', 'README.md'), ...docs, ...examples].filter((f) => existsSync(path.join(ROOT, f)));
}

/** The text outside fenced blocks and inline code: a regex in backticks is not a link. */
const prose = (text: string): string => text.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');

test('relative links in the docs resolve to files in the repository', () => {
  const broken: string[] = [];
  for (const file of markdownFiles()) {
    for (const [, target] of prose(readFileSync(path.join(ROOT, file), 'utf8')).matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target!)) continue;
      const resolved = path.resolve(ROOT, path.dirname(file), target!);
      if (!resolved.startsWith(ROOT + path.sep) || !existsSync(resolved)) broken.push(`${file}: ${target}`);
    }
  }
  assert.deepEqual(broken, []);
});

test('no doc cites a file outside the repository', () => {
  const outside: string[] = [];
  for (const file of markdownFiles()) {
    // Fenced code is code (an example's `import ... from '../../sdk/wasm.ts'`); prose and inline code are citations.
    const text = readFileSync(path.join(ROOT, file), 'utf8').replace(/```[\s\S]*?```/g, '');
    for (const [cited] of text.matchAll(/(?<![\w/.])\.\.\/[\w./-]+/g)) {
      if (!path.resolve(ROOT, path.dirname(file), cited).startsWith(ROOT + path.sep)) outside.push(`${file}: ${cited}`);
    }
    for (const [cited] of text.matchAll(/\/work\/(?:shared|main)\/[\w./-]*/g)) outside.push(`${file}: ${cited}`);
  }
  assert.deepEqual(outside, []);
});
