/**
 * This node's side of membership: its id and address, the heartbeat it writes every heartbeatMs (with the
 * state an admin asked for through the control bucket), and the fleet secret (configured, or the one the first
 * node generated and stored with `kv.create`, which every later node reads).
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { KV } from 'nats';
import { apiErrorCode, WRONG_LAST_SEQUENCE } from './connection.ts';
import { encodeRecord, type NodeRecord, type NodeState } from './records.ts';
import { adminKey } from './routes.ts';
import { nodeKeyOf } from './state.ts';

const SECRET_KEY = 'secret';

export async function fleetSecret(control: KV, configured: string | undefined): Promise<string> {
  if (configured !== undefined) return configured;
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      const existing = await control.get(SECRET_KEY);
      if (existing && existing.operation === 'PUT' && existing.length >= 32) return existing.string();
      const secret = randomBytes(32).toString('base64url');
      await control.create(SECRET_KEY, new TextEncoder().encode(secret));
      return secret;
    } catch (error) {
      // Another node created it first (or ours timed out after being stored, or no leader yet): read it again.
      if (apiErrorCode(error) !== WRONG_LAST_SEQUENCE) await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
  throw new Error('could not read or create the fleet secret');
}

/** `http://host:port` of a server URL, with a wildcard listen address replaced by this host's name. */
export function advertiseOf(url: string): string {
  const parsed = new URL(url);
  if (parsed.hostname === '0.0.0.0' || parsed.hostname === '[::]') parsed.hostname = os.hostname();
  return `http://${parsed.host}`;
}

/** host and port of an advertise URL, as an upstream address (IPv6 brackets removed). */
export function addressOf(advertise: string): { host: string; port: number } {
  const parsed = new URL(advertise);
  return { host: parsed.hostname.replace(/^\[|\]$/g, ''), port: Number(parsed.port || 80) };
}

export class Heartbeat {
  state: NodeState = 'active';

  constructor(
    private readonly nodes: KV,
    private readonly control: KV,
    readonly id: string,
    private readonly describe: () => Omit<NodeRecord, 'id' | 'at' | 'state'>,
  ) {}

  /** Reads the state an admin asked for, then writes the heartbeat (a put: safe to repeat). */
  async beat(): Promise<void> {
    const requested = await this.control.get(adminKey(this.id)).catch(() => undefined);
    if (requested && requested.operation === 'PUT') {
      try {
        const value = requested.json<{ state?: unknown }>();
        if (value.state === 'active' || value.state === 'cordoned' || value.state === 'draining') this.state = value.state;
      } catch {
        // Not ours to fix: the state stays as it was.
      }
    }
    await this.write(Date.now());
  }

  write(at: number): Promise<number> {
    const record: NodeRecord = { id: this.id, at, state: this.state, ...this.describe() };
    return this.nodes.put(nodeKeyOf(this.id), encodeRecord(record));
  }
}
