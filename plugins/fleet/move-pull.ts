/**
 * The target's pull of a move's archive (docs/fleet-move.md): a signed GET to the source, the response unpacked as
 * it arrives (archive-unpack.ts) in the socket's `data` callback, its size counted and its digest taken on the way,
 * the socket paused while the disk falls behind. Resolves with what was received, for the source to compare with
 * what it sent before the placement moves.
 */
import http from 'node:http';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import { Digest, Unpacker, type Packed } from './archive.ts';
import { addressOf } from './node.ts';
import { NODE_HEADER, signCall, type Peer } from './peer.ts';

/** GETs another node's archive and unpacks it under `dest` (which must not exist): at most `maxBytes`. */
export function pullArchive(peer: Peer, url: string, dest: string, tops: readonly string[], maxBytes: number, timeoutMs: number): Promise<Packed> {
  return new Promise<Packed>((resolve, reject) => {
    const { host, port } = addressOf(peer.advertise);
    let unpacker: Unpacker | null = null;
    let settled = false;
    const failed = (error: unknown): void => {
      if (settled) return;
      settled = true;
      req.destroy();
      const reason = error instanceof Error ? error : new Error(String(error));
      // The folder is the caller's to remove: nothing is written into it once this settles.
      (unpacker ? unpacker.abort(reason) : Promise.resolve()).then(() => reject(reason), () => reject(reason));
    };
    const req = http.request(
      { host, port, method: 'GET', path: url, agent: false, timeout: timeoutMs, headers: { host: peer.domain, [NODE_HEADER]: signCall(peer.secret, peer.self, peer.node, 'GET', url, '') } },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return failed(new TenementError(ErrorCodes.FLEET_UNAVAILABLE, `${url} on ${peer.advertise}: ${res.statusCode}`));
        }
        const digest = new Digest();
        const into = new Unpacker(dest, tops, { pause: () => res.pause(), resume: () => res.resume() });
        unpacker = into;
        res.on('data', (chunk: Buffer) => {
          if (settled) return;
          try {
            digest.update(chunk);
            if (digest.bytes > maxBytes) throw new TenementError(ErrorCodes.BODY_TOO_LARGE, `${url}: more than ${maxBytes} bytes (settings.fleet.moveMaxBytes)`);
            into.push(chunk);
          } catch (error) {
            failed(error);
          }
        });
        res.on('error', failed);
        res.on('end', () => {
          if (settled) return;
          if (!res.complete) return failed(new Error(`${url}: the archive was cut short`));
          into.end().then(
            () => {
              if (settled) return;
              settled = true;
              resolve(digest.result());
            },
            failed,
          );
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${url} on ${peer.advertise}: not received within ${timeoutMs}ms`)));
    req.on('error', failed);
    req.end();
  });
}
