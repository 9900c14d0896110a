// Two minutes of the churn soak (bench/soak.ts) in CI: steady load over many tenants of a small Node app while
// instances hibernate (idleTimeout and API), wake, restart (API), get created and deleted (API), against a real
// `ten serve`. Every request must be served by its tenant's own app; the only other answer allowed is a coded
// one to a request whose tenant was being deleted meanwhile (counted apart, as `raced`). Descriptors, measured
// with every tenant hibernated and no client connected, must be as many at the end as after the warm-up.
// SOAK_TEST_MINUTES makes it longer.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TEN_BIN } from '../../bench/lib.ts';
import { formatSoak, runSoakBench } from '../../bench/soak.ts';

const minutes = Number(process.env.SOAK_TEST_MINUTES ?? 2);

test(`churn soak, ${minutes} minutes: every request served, descriptors flat, the server up`, { timeout: (minutes * 60 + 300) * 1000 }, async () => {
  const lines: string[] = [];
  const result = await runSoakBench({
    minutes,
    tenants: 12,
    concurrency: 4,
    rps: 80,
    churnEveryMs: 400,
    sampleEveryMs: 30_000,
    warmupMs: 20_000,
    print: (line) => lines.push(line),
    // The sources, as every other test runs them: the benches' default (the compiled package) would build dist/
    // here, a minute or more of CI, racing the package test's own build of the same folder.
    script: TEN_BIN,
  });
  const report = `${lines.join('\n')}\n${formatSoak(result)}`;
  assert.ok(!result.serverExited, `ten serve exited\n${report}`);
  assert.equal(result.errors, 0, `requests not served\n${report}`);
  assert.ok(result.served > 0, report);
  assert.ok(result.quietFds.end - result.quietFds.afterWarmup <= 5, `descriptors grew\n${report}`);
  assert.equal(result.internalErrors, 0, `tenement_internal_errors_total\n${report}`);
  // The churn really happened: each kind of action ran and succeeded at least once.
  for (const action of ['create 201', 'delete 200', 'hibernate 200', 'restart 200']) {
    assert.ok((result.actions[action] ?? 0) > 0, `no '${action}' in the run\n${report}`);
  }
  process.stdout.write(`${report}\n`);
});
