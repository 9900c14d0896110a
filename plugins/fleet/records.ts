/** The values kept in the fleet's KV buckets, and their checked parsing (a bucket is shared: never trust a shape). */
import type { KvEntry } from 'nats';
import { PUBLIC_URL } from './schema.ts';

export type NodeState = 'active' | 'cordoned' | 'draining';
const NODE_STATES: ReadonlySet<string> = new Set(['active', 'cordoned', 'draining']);

/** `tenement_nodes` value, written by each node every heartbeatMs. */
export interface NodeRecord {
  id: string;
  /** Where other nodes reach this node's proxy (http://host:port); empty until it listens. */
  advertise: string;
  /** Where clients reach this node directly (a `{id}.{service}` URL template, checked), or empty: redirect mode. */
  publicUrl: string;
  labels: Record<string, string>;
  capacity: number | null;
  /** Instances running on this node (its own processes, not forwarding stubs). */
  running: number;
  /** Unix ms of the heartbeat. */
  at: number;
  state: NodeState;
}

/** `tenement_placements` value: which node an instance lives on. */
export interface PlacementRecord {
  node: string;
  at: number;
  /** 1 when claimed, +1 on every move. */
  generation: number;
  service: string;
  id: string;
  /** The node that wrote it, and a random word telling its write from any other (read back after a timeout). */
  by?: string;
  nonce?: string;
}

/** A placement as read, with the KV revision its next move must compare against. */
export interface Placement extends PlacementRecord {
  revision: number;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function parse(entry: KvEntry): unknown {
  try {
    return JSON.parse(entry.string()) as unknown;
  } catch {
    return null;
  }
}

export function parseNode(entry: KvEntry): NodeRecord | null {
  const value = parse(entry);
  if (!isObject(value)) return null;
  const { id, advertise, publicUrl, labels, capacity, running, at, state } = value;
  if (typeof id !== 'string' || typeof advertise !== 'string' || typeof at !== 'number' || typeof state !== 'string' || !NODE_STATES.has(state)) return null;
  const cleanLabels: Record<string, string> = Object.create(null) as Record<string, string>;
  if (isObject(labels)) for (const [k, v] of Object.entries(labels)) if (typeof v === 'string') cleanLabels[k] = v;
  return {
    id,
    advertise,
    // Written by whoever can write the bucket: only a well-formed template is ever used for a Location.
    publicUrl: typeof publicUrl === 'string' && publicUrl.length <= 256 && PUBLIC_URL.test(publicUrl) ? publicUrl : '',
    labels: cleanLabels,
    capacity: typeof capacity === 'number' && capacity > 0 ? capacity : null,
    running: typeof running === 'number' ? running : 0,
    at,
    state: state as NodeState,
  };
}

export function parsePlacement(entry: KvEntry): Placement | null {
  const value = parse(entry);
  if (!isObject(value)) return null;
  const { node, at, generation, service, id, by, nonce } = value;
  if (typeof node !== 'string' || typeof at !== 'number' || typeof generation !== 'number' || typeof service !== 'string' || typeof id !== 'string') return null;
  return { node, at, generation, service, id, ...(typeof by === 'string' ? { by } : {}), ...(typeof nonce === 'string' ? { nonce } : {}), revision: entry.revision };
}

export function encodeRecord(value: NodeRecord | PlacementRecord | Record<string, unknown>): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}
