/**
 * API tokens fleet-wide (docs/fleet.md): a token made on one node works on every node, and a revocation
 * reaches every node in about a millisecond (a KV watch), within a second even under load.
 *
 * The `tenement_tokens` bucket holds one key per token id: the token's record (its SHA-256, never the secret;
 * name, scope, expiry, revocation), with an HMAC under the fleet secret, so whoever can write the bucket but
 * does not hold a configured `fleet.secret` cannot slip in a token of their own. Every node watches the bucket and
 * hands each record to its token keeper through `ctx.tokens` (auth-bearer stores it in its table; tenant scope
 * travels with the record, so it holds on every node); every token made or revoked on a node is merged into the
 * bucket with compare-and-swap. Merging never undoes a revocation: the earliest `revokedAt` wins, so concurrent
 * writers converge, and a revoke made while NATS was unreachable is retried until it is stored.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { KV, KvEntry, NatsConnection } from 'nats';
import { errorFields } from '../../core/errors.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { TokenRecord } from '../../core/token-sync.ts';
import { KV_TIMEOUT_MS, WRONG_LAST_SEQUENCE, apiErrorCode } from './connection.ts';

export const TOKENS_BUCKET = 'tenement_tokens';

/** Records the node publishes at once at most (the start-up export of a node's tokens). */
const PUBLISH_CONCURRENCY = 8;
/** How often failed publications (NATS unreachable) are tried again. */
const RETRY_MS = 1000;
const MAX_VALUE_BYTES = 4096;

interface Envelope {
  v: 1;
  record: TokenRecord;
  mac: string;
}

/** The record's fields in a fixed order: what the HMAC covers. */
function canonical(record: TokenRecord): string {
  const { id, name, kind, tenant, hash, createdAt, expiresAt, revokedAt } = record;
  return JSON.stringify([id, name, kind, tenant, hash, createdAt, expiresAt, revokedAt]);
}

export function macOf(secret: string, record: TokenRecord): string {
  return createHmac('sha256', secret).update(`tenement-token\n${canonical(record)}`).digest('hex');
}

export function encodeEnvelope(secret: string, record: TokenRecord): Uint8Array {
  const clean: TokenRecord = {
    id: record.id,
    name: record.name,
    kind: record.kind,
    tenant: record.tenant,
    hash: record.hash,
    createdAt: record.createdAt,
    expiresAt: record.expiresAt,
    revokedAt: record.revokedAt,
  };
  return new TextEncoder().encode(JSON.stringify({ v: 1, record: clean, mac: macOf(secret, clean) } satisfies Envelope));
}

/** The record in a bucket value when its HMAC checks out; null for anything else (the keeper checks the fields). */
export function decodeEnvelope(secret: string, entry: Pick<KvEntry, 'value' | 'key'>): TokenRecord | null {
  if (entry.value.length === 0 || entry.value.length > MAX_VALUE_BYTES) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(entry.value));
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null) return null;
  const { v, record, mac } = parsed as Partial<Envelope>;
  if (v !== 1 || typeof mac !== 'string' || typeof record !== 'object' || record === null) return null;
  // The key names the token: a value copied under another key is not that token.
  if (record.id !== entry.key) return null;
  const expected = Buffer.from(macOf(secret, record), 'hex');
  const given = Buffer.from(mac, 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
  return record;
}

/** `a` merged with `b` (same token): the earliest revocation. Null when they are not the same token. */
export function mergeRecords(a: TokenRecord, b: TokenRecord): TokenRecord | null {
  if (a.id !== b.id || a.hash !== b.hash) return null;
  const revokedAt = a.revokedAt === null ? b.revokedAt : b.revokedAt === null ? a.revokedAt : Math.min(a.revokedAt, b.revokedAt);
  return { ...a, revokedAt };
}

export interface TokenReplication {
  /** Publications not stored yet (NATS unreachable). */
  readonly pending: number;
  stop(): void;
}

/** The bucket, created if missing; retried for a while (a forming cluster, or three nodes creating it at once, answer 503 for a moment). */
async function openBucket(nc: NatsConnection, replicas: number, timeoutMs = 15_000): Promise<KV> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await nc.jetstream({ timeout: KV_TIMEOUT_MS }).views.kv(TOKENS_BUCKET, { replicas, history: 5, timeout: KV_TIMEOUT_MS });
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

/**
 * Starts replicating this node's tokens. Resolves once the bucket's current tokens are applied here and this
 * node's own tokens are published (or queued for retry), so a node serves the fleet's tokens from its first
 * request. Without a token keeper yet (`auth-bearer` set up later, or not loaded) it starts when one serves.
 */
export async function startTokenReplication(ctx: PluginContext, nc: NatsConnection, replicas: number, secret: string): Promise<TokenReplication> {
  if (ctx.tokens.served) return replicate(ctx, nc, replicas, secret);
  // The token keeper is set up after the fleet (another plugin order): replicate from the moment it serves.
  let started: TokenReplication | null = null;
  let stopped = false;
  ctx.tokens.whenServed(() => {
    replicate(ctx, nc, replicas, secret).then(
      (replication) => (stopped ? replication.stop() : (started = replication)),
      (error: unknown) => ctx.log.error(errorFields(error), 'fleet: token replication did not start: tokens stay per node'),
    );
  });
  return {
    get pending() {
      return started?.pending ?? 0;
    },
    stop() {
      stopped = true;
      started?.stop();
    },
  };
}

async function replicate(ctx: PluginContext, nc: NatsConnection, replicas: number, secret: string): Promise<TokenReplication> {
  const kv = await openBucket(nc, replicas);
  const pending = new Map<string, TokenRecord>();
  let stopped = false;

  /** Merges `record` into the bucket with compare-and-swap; throws when NATS does not answer. */
  const store = async (record: TokenRecord): Promise<void> => {
    for (let attempt = 0; attempt < 10; attempt++) {
      const entry = await kv.get(record.id);
      const current = entry && entry.operation === 'PUT' ? decodeEnvelope(secret, entry) : null;
      const merged = current ? mergeRecords(current, record) : record;
      // Another token under this id (never by chance: 64 random bits), or the bucket already says as much.
      if (merged === null) {
        ctx.log.warn({ token: record.id }, 'fleet: a different token already holds this id in the bucket; not replicated');
        return;
      }
      if (current && current.revokedAt === merged.revokedAt) return;
      try {
        if (entry) await kv.update(record.id, encodeEnvelope(secret, merged), entry.revision);
        else await kv.create(record.id, encodeEnvelope(secret, merged));
        return;
      } catch (error) {
        // Lost a race with another writer: read again and merge with what won.
        if (apiErrorCode(error) !== WRONG_LAST_SEQUENCE) throw error;
      }
    }
    throw new Error(`token ${record.id}: compare-and-swap kept losing`);
  };

  const publish = async (record: TokenRecord): Promise<void> => {
    try {
      await store(record);
      if (pending.get(record.id) === record) pending.delete(record.id);
    } catch (error) {
      const queued = pending.get(record.id);
      pending.set(record.id, queued ? (mergeRecords(queued, record) ?? record) : record);
      ctx.log.warn({ token: record.id, ...errorFields(error) }, 'fleet: token change not replicated yet; retrying');
    }
  };

  const apply = (entry: KvEntry): void => {
    if (entry.operation !== 'PUT') return;
    const record = decodeEnvelope(secret, entry);
    // Counted and logged a burst at a time: whoever writes junk into the bucket cannot flood the log.
    if (record === null) {
      ctx.faults.record('fleet:tokens', new Error('a token record in the bucket is malformed or not signed with the fleet secret: ignored'), { key: entry.key.slice(0, 80) });
      return;
    }
    const kept = ctx.tokens.apply(record);
    if (kept === null) {
      ctx.faults.record('fleet:tokens', new Error('the token keeper refused a record (malformed, or its id or hash clashes with a token here)'), { token: record.id });
      return;
    }
    // This node knew of a revocation the bucket lacks (made while NATS was away): put it back.
    if (kept.revokedAt !== record.revokedAt) void publish(kept);
  };

  let initialized!: () => void;
  const ready = new Promise<void>((resolve) => (initialized = resolve));
  const watch = await kv.watch({ initializedFn: () => initialized() });
  void (async () => {
    for await (const entry of watch) {
      try {
        apply(entry);
      } catch (error) {
        ctx.log.warn(errorFields(error), 'fleet: applying a token record failed');
      }
    }
  })().catch(() => undefined);
  await ready;

  const unsubscribe = ctx.tokens.subscribe((record) => void publish(record));

  // This node's own tokens (those made before it joined, and any the bucket lacks), a few at a time.
  const mine = ctx.tokens.list();
  for (let i = 0; i < mine.length; i += PUBLISH_CONCURRENCY) {
    await Promise.all(mine.slice(i, i + PUBLISH_CONCURRENCY).map((record) => publish(record)));
  }

  const retry = setInterval(() => {
    if (pending.size === 0) return;
    for (const record of [...pending.values()]) void publish(record);
  }, RETRY_MS);
  retry.unref();

  return {
    get pending() {
      return pending.size;
    },
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(retry);
      unsubscribe();
      watch.stop();
    },
  };
}
