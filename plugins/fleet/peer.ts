/**
 * Signed node-to-node calls of a move (the fleet's internal API routes, plugins/fleet/move.ts): the header
 * `x-tenement-fleet-node` is a node call signed as signed-call.ts does (no caller: the node's own call) over the
 * method, the node called, the path and the sha256 of the body, keyed by the fleet secret, so a client without the
 * secret can neither make one nor change the body or the node of one it saw. A signature is accepted once.
 */
import http from 'node:http';
import { ErrorCodes, TenementError, isErrorCode } from '../../core/errors.ts';
import { ReplayGuard, signNodeCall, verifyNodeCall } from './signed-call.ts';
import { addressOf } from './node.ts';

export const NODE_HEADER = 'x-tenement-fleet-node';
export function signCall(secret: string, self: string, to: string, method: string, url: string, body: string): string {
  return signNodeCall(secret, self, '', { method, to, target: url, body });
}

/** Checks signatures of calls received, each accepted once. */
export class CallVerifier {
  private readonly seen = new ReplayGuard();

  constructor(
    private readonly secret: string,
    private readonly self: string,
  ) {}

  /** The calling node's id; throws TNM_ERR_FLEET_FORGED for a missing, wrong, stale or replayed signature. */
  verify(header: unknown, method: string, url: string, body: string): string {
    const checked = typeof header === 'string' ? verifyNodeCall(this.secret, header, { method, to: this.self, target: url, body }) : null;
    // A relayed caller's call (a `who`) is no node's own call.
    if (checked === null || checked.who !== '') throw new TenementError(ErrorCodes.FLEET_FORGED, `a fleet-internal call needs the ${NODE_HEADER} header signed with the fleet secret`);
    if (!this.seen.accept(header as string)) throw new TenementError(ErrorCodes.FLEET_FORGED, 'a fleet-internal call was replayed');
    return checked.from;
  }
}

export interface Peer {
  /** The node called. */
  node: string;
  advertise: string;
  domain: string;
  secret: string;
  self: string;
}

/** POSTs a JSON body to another node's internal route; resolves with its JSON answer, or throws its coded error. */
export function callNode<T>(peer: Peer, url: string, value: unknown, timeoutMs: number): Promise<T> {
  const body = JSON.stringify(value);
  return new Promise<T>((resolve, reject) => {
    const { host, port } = addressOf(peer.advertise);
    const req = http.request(
      {
        host,
        port,
        method: 'POST',
        path: url,
        agent: false,
        timeout: timeoutMs,
        headers: { host: peer.domain, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), [NODE_HEADER]: signCall(peer.secret, peer.self, peer.node, 'POST', url, body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = null;
          try {
            parsed = JSON.parse(text);
          } catch {
            parsed = null;
          }
          if (res.statusCode === 200) return resolve(parsed as T);
          const error = (parsed as { error?: { code?: string; message?: string } } | null)?.error;
          // The other node's coded refusal stays that refusal (a move's TNM_ERR_FLEET_NO_ROOM, a 404, a 409).
          const code = isErrorCode(error?.code) ? error.code : ErrorCodes.FLEET_UNAVAILABLE;
          reject(new TenementError(code, `${url} on ${peer.advertise}: ${res.statusCode} ${error?.code ?? ''} ${error?.message ?? text.slice(0, 300)}`.trim()));
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${url} on ${peer.advertise}: no answer within ${timeoutMs}ms`)));
    req.on('error', (error) => reject(new TenementError(ErrorCodes.FLEET_UNAVAILABLE, `${url} on ${peer.advertise}: ${error.message}`)));
    req.end(body);
  });
}
