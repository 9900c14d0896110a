// Every example folder says how to run it and keeps its state out of git: a README.md whose steps name its own
// config and whose links resolve, and a .gitignore under which the data dir its config names (with admin.token,
// the admin credential) is ignored.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers.ts';

const EXAMPLES = path.join(ROOT, 'examples');
const folders = readdirSync(EXAMPLES, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);

test('each example has a README.md with its run steps, and its links resolve', { timeout: 30_000 }, () => {
  assert.ok(folders.length >= 8, folders.join(', '));
  for (const name of folders) {
    const readme = path.join(EXAMPLES, name, 'README.md');
    assert.ok(existsSync(readme), `examples/${name} has no README.md`);
    const text = readFileSync(readme, 'utf8');
    assert.ok(text.includes(`examples/${name}/tenement.config.ts`) || text.includes('npm start'), `examples/${name}/README.md says how to serve it`);
    assert.match(text, /```sh\n[\s\S]*curl /, `examples/${name}/README.md shows a request`);
    for (const [, target] of text.matchAll(/\]\(([^)#]+)(#[^)]*)?\)/g)) {
      if (/^https?:/.test(target!)) continue;
      assert.ok(existsSync(path.resolve(EXAMPLES, name, target!)), `examples/${name}/README.md links to ${target}, which does not exist`);
    }
  }
});

test("each example's data dir (admin.token included) is ignored by git", { timeout: 60_000 }, () => {
  for (const name of folders) {
    const config = readFileSync(path.join(EXAMPLES, name, 'tenement.config.ts'), 'utf8');
    const dataDir = /dataDir: '([^']+)'/.exec(config)?.[1] ?? './tenement-data';
    const token = path.relative(ROOT, path.resolve(EXAMPLES, name, dataDir, 'admin.token'));
    // Bounded: a git that waits (on a lock, a prompt) fails this test in seconds, not the file at the suite's timeout.
    const checked = spawnSync('git', ['check-ignore', '-q', token], { cwd: ROOT, timeout: 15_000, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_OPTIONAL_LOCKS: '0' } });
    assert.equal(checked.status, 0, `${token} (examples/${name}'s data dir) is not ignored by git: ${checked.error ?? checked.stderr}`);
    if (path.resolve(EXAMPLES, name, dataDir).startsWith(path.join(EXAMPLES, name) + path.sep)) {
      assert.ok(existsSync(path.join(EXAMPLES, name, '.gitignore')), `examples/${name} keeps its data inside: it needs its own .gitignore (copied out of the repository, it still ignores it)`);
    }
  }
});
