/**
 * The fleet's NATS connection and its KV buckets. Start-up waits a bounded time for the cluster (and for
 * JetStream, which a forming cluster answers late), then fails with TNM_ERR_FLEET_UNREACHABLE; once connected,
 * the client reconnects forever. Buckets are created idempotently (every node creates them with the same config).
 */
import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, nkeyAuthenticator, type ConnectionOptions, type KV, type NatsConnection } from 'nats';
import { ErrorCodes, TenementError, errorMessage } from '../../core/errors.ts';
import type { FleetSettings } from './schema.ts';

export const NODES_BUCKET = 'tenement_nodes';
export const PLACEMENTS_BUCKET = 'tenement_placements';
/** Cordon/drain requests per node, and the generated fleet secret: no TTL, unlike the heartbeats. */
export const CONTROL_BUCKET = 'tenement_fleet';

/** How long one KV operation may take before it is retried (a timed-out write may have been stored). */
export const KV_TIMEOUT_MS = 2000;

export interface FleetConnection {
  nc: NatsConnection;
  nodes: KV;
  placements: KV;
  control: KV;
  replicas: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function connectionOptions(settings: FleetSettings, node: string, timeoutMs: number, configDir: string): ConnectionOptions {
  const resolve = (file: string): string => (file.startsWith('/') ? file : `${configDir}/${file}`);
  const options: ConnectionOptions = {
    servers: settings.servers,
    name: `tenement:${node}`,
    timeout: timeoutMs,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    pingInterval: 10_000,
  };
  if (settings.credentials) options.authenticator = credsAuthenticator(new Uint8Array(readFileSync(resolve(settings.credentials))));
  else if (settings.nkey) options.authenticator = nkeyAuthenticator(new TextEncoder().encode(readFileSync(resolve(settings.nkey), 'utf8').trim()));
  if (settings.tls) {
    const { ca, cert, key } = settings.tls;
    options.tls = {
      ...(ca ? { caFile: resolve(ca) } : {}),
      ...(cert ? { certFile: resolve(cert) } : {}),
      ...(key ? { keyFile: resolve(key) } : {}),
    };
  }
  return options;
}

/** Retries `step` until it succeeds or the deadline passes; then a coded error naming what was tried. */
async function until<T>(deadline: number, what: string, step: () => Promise<T>): Promise<T> {
  let last: unknown = null;
  while (Date.now() < deadline) {
    try {
      return await step();
    } catch (error) {
      last = error;
      await sleep(Math.min(250, Math.max(0, deadline - Date.now())));
    }
  }
  // The code is in the message too: the kernel wraps a setup failure in TNM_ERR_PLUGIN_SETUP (this one is its cause).
  throw new TenementError(
    ErrorCodes.FLEET_UNREACHABLE,
    `fleet: ${what} failed within connectTimeoutMs (${ErrorCodes.FLEET_UNREACHABLE}): ${last === null ? 'no attempt' : errorMessage(last)}`,
  );
}

export async function openFleet(settings: FleetSettings, node: string, configDir: string): Promise<FleetConnection> {
  const deadline = Date.now() + settings.connectTimeoutMs;
  const nc = await until(deadline, `connecting to NATS (${settings.servers.join(', ')})`, () =>
    connect(connectionOptions(settings, node, Math.max(100, Math.min(2000, deadline - Date.now())), configDir)),
  );
  try {
    // R3 where the cluster has three servers or more (the client hears of every server it may reconnect to).
    const known = Math.max(settings.servers.length, nc.info?.connect_urls?.length ?? 1);
    const replicas = Math.min(3, Math.max(1, known));
    const js = nc.jetstream({ timeout: KV_TIMEOUT_MS });
    // A bucket just created (or a cluster just formed) answers 503 until its stream has a leader: each is read
    // once before start-up goes on.
    const open = (bucket: string, ttl?: number): Promise<KV> =>
      until(deadline, `opening the KV bucket ${bucket}`, async () => {
        const kv = await js.views.kv(bucket, { replicas, history: 5, timeout: KV_TIMEOUT_MS, ...(ttl ? { ttl } : {}) });
        await kv.get('_ready');
        return kv;
      });
    // Heartbeats also expire with the bucket's TTL, as a backstop only (2.9 sends no event for it): liveness
    // is judged from each record's `at`.
    const nodes = await open(NODES_BUCKET, Math.max(60_000, settings.expiryMs * 10));
    const placements = await open(PLACEMENTS_BUCKET);
    const control = await open(CONTROL_BUCKET);
    return { nc, nodes, placements, control, replicas };
  } catch (error) {
    await nc.close().catch(() => undefined);
    throw error;
  }
}

/** The JetStream API error code of a failed KV call (10071: wrong last sequence, a lost create or CAS). */
export function apiErrorCode(error: unknown): number | null {
  const api = (error as { api_error?: { err_code?: unknown } } | null)?.api_error;
  if (api && typeof api.err_code === 'number') return api.err_code;
  return /wrong last sequence/.test(errorMessage(error)) ? 10071 : null;
}

export const WRONG_LAST_SEQUENCE = 10071;
