/**
 * Whether this host can run the HAProxy edge (`ten doctor`, docs/edge.md): the binary, its version, and whether
 * it is recent enough. 2.6 is the floor: `option http-restrict-req-hdr-names` and the runtime API's
 * `set server ... addr ... port` the edge relies on are there (Debian 12 ships 2.6).
 */
import { execFileSync } from 'node:child_process';

export interface HaproxyCheck {
  binary: string;
  found: boolean;
  version: string | null;
  ok: boolean;
  /** Why not, with the fix, when not ok. */
  reason: string | null;
}

export const MIN_VERSION: readonly [number, number] = [2, 6];

export function checkHaproxy(binary = 'haproxy'): HaproxyCheck {
  let output: string;
  try {
    output = execFileSync(binary, ['-v'], { encoding: 'utf8', timeout: 5_000, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch {
    return { binary, found: false, version: null, ok: false, reason: `${binary} not found (apt-get install haproxy): settings.edge 'haproxy' needs it` };
  }
  const match = /HAProxy version (\d+)\.(\d+)(\S*)/i.exec(output);
  if (!match) return { binary, found: true, version: null, ok: false, reason: `could not read a version from '${binary} -v'` };
  const [major, minor] = [Number(match[1]), Number(match[2])];
  const version = `${match[1]}.${match[2]}${match[3]}`;
  const ok = major > MIN_VERSION[0] || (major === MIN_VERSION[0] && minor >= MIN_VERSION[1]);
  return { binary, found: true, version, ok, reason: ok ? null : `HAProxy ${version} is older than ${MIN_VERSION.join('.')}: the edge needs 2.6 or later` };
}
