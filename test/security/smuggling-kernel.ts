// A kernel with the counting backend (test/fixtures/security/counting-backend.mjs) as instance `count:a`,
// on the fast path or (fast: false) with everything on node:http, and a raw-socket client that never throws.
import net from 'node:net';
import path from 'node:path';
import type { TestContext } from 'node:test';
import type { TestKernel } from '../../core/test-kernel.ts';
import { edgeKernel, type EdgeKind, type EdgeServer } from '../edges.ts';
import { FIXTURES, request, trackedKernel } from '../helpers.ts';

export const HOST = 'a.count.localhost';
const BACKEND = path.join(FIXTURES, 'security', 'counting-backend.mjs');

export async function countingKernel(t: TestContext, fast: boolean): Promise<TestKernel> {
  if (!fast) process.env.TENEMENT_FAST_PROXY = '0';
  try {
    const { kernel } = await trackedKernel(t, { count: { command: `node ${BACKEND}`, idleTimeout: false } });
    await kernel.spawnInstance('count', 'a');
    return kernel;
  } finally {
    delete process.env.TENEMENT_FAST_PROXY;
  }
}

/** The counting backend as `count:a` behind the given edge (test/edges.ts), routed directly by that edge. */
export async function countingEdge(t: TestContext, edge: EdgeKind): Promise<EdgeServer> {
  const server = await edgeKernel(t, edge, { count: { command: `node ${BACKEND}`, idleTimeout: false } });
  await server.kernel.spawnInstance('count', 'a');
  await server.settled();
  return server;
}

export interface BackendStats {
  heads: number;
  bodies: string[];
  paths: string[];
  smuggled: number;
  canaryInBody: number;
}

export async function backendStats(kernel: TestKernel | string): Promise<BackendStats> {
  const reply = await request(kernel, HOST, '/__stats');
  return JSON.parse(reply.body) as BackendStats;
}

export interface RawResult {
  text: string;
  /** The server closed the connection (FIN or reset). */
  closed: boolean;
  /** `until` never matched and the server kept the connection open for `timeoutMs`. */
  timedOut: boolean;
}

/** Writes `data` on a new connection and reads until `until` matches, the server closes, or `timeoutMs` passes. */
export function rawSend(kernel: TestKernel | string, data: string | Buffer, until: (text: string) => boolean, timeoutMs = 5_000): Promise<RawResult> {
  const url = new URL(typeof kernel === 'string' ? kernel : kernel.url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(url.port), url.hostname);
    let text = '';
    const done = (closed: boolean, timedOut: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed, timedOut });
    };
    const timer = setTimeout(() => done(false, true), timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (until(text)) done(false, false);
    });
    socket.on('end', () => done(true, false));
    socket.on('error', () => done(true, false));
    socket.on('connect', () => socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data));
  });
}

/** Complete HTTP responses in `text` (status lines of final responses). */
export const answers = (text: string): number => (text.match(/HTTP\/1\.1 [2-5]\d\d /g) ?? []).length;
