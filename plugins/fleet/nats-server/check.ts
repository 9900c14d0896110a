/**
 * Whether this host can run the NATS servers of `ten nats start` (`ten doctor`, docs/fleet.md): the binary and
 * its version. Fleet mode works with 2.9 (Debian 12's), which has no per-key TTL and a replica catch-up defect
 * the watchdog works around; the note says so.
 */
import { execFileSync } from 'node:child_process';

export interface NatsServerCheck {
  binary: string;
  found: boolean;
  version: string | null;
  /** What to know about this version (null when nothing). */
  note: string | null;
}

export function checkNatsServer(binary = 'nats-server'): NatsServerCheck {
  let output: string;
  try {
    output = execFileSync(binary, ['--version'], { encoding: 'utf8', timeout: 5_000, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch {
    return { binary, found: false, version: null, note: `${binary} not found (apt-get install nats-server): ten nats start needs it; ten serve --fleet can use NATS servers elsewhere` };
  }
  const match = /v?(\d+)\.(\d+)\.(\d+)/.exec(output);
  if (!match) return { binary, found: true, version: null, note: `could not read a version from '${binary} --version'` };
  const version = `${match[1]}.${match[2]}.${match[3]}`;
  const [major, minor] = [Number(match[1]), Number(match[2])];
  const old = major === 2 && minor < 10;
  return {
    binary,
    found: true,
    version,
    note: old ? 'no per-key TTL; a restarted replica can stay "not current" (the ten nats start watchdog restarts it)' : null,
  };
}
