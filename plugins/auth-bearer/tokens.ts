import type { PluginStore } from '../../core/plugin-context.ts';
import { DNS_LABEL } from '../../core/config/schema.ts';
import type { TokenRecord } from '../../core/token-sync.ts';
import type { Identity } from '../../core/types.ts';
import { generateId, generateToken, hashToken, isTokenShaped, sameHash } from './secret.ts';

/** The plugin's name, which is also the owner its table's migrations are versioned under (keep it). */
export const OWNER = 'auth-bearer';

/** This plugin's own table, versioned under its own name (append-only steps). */
export const MIGRATIONS = [
  {
    version: 1,
    sql: `
      CREATE TABLE auth_bearer_tokens (
        id           TEXT PRIMARY KEY,
        name         TEXT NOT NULL,
        kind         TEXT NOT NULL CHECK (kind IN ('admin', 'tenant')),
        tenant       TEXT,
        hash         TEXT NOT NULL UNIQUE,
        created_at   INTEGER NOT NULL,
        expires_at   INTEGER,
        revoked_at   INTEGER,
        last_used_at INTEGER,
        CHECK ((kind = 'tenant') = (tenant IS NOT NULL))
      ) WITHOUT ROWID;
    `,
  },
];

/** What the API shows about a token: never the secret, never its hash. Times are epoch milliseconds. */
export interface TokenInfo {
  id: string;
  name: string;
  kind: 'admin' | 'tenant';
  tenant: string | null;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
  lastUsedAt: number | null;
}

interface TokenRow extends TokenInfo {
  hash: string;
}

/**
 * last_used_at is a hint for operators, not an audit trail: writing it at most once a minute per token keeps
 * an authenticated request from costing a database write every time.
 */
const TOUCH_EVERY_MS = 60_000;

const COLUMNS = `id, name, kind, tenant, created_at AS createdAt, expires_at AS expiresAt, revoked_at AS revokedAt,
  last_used_at AS lastUsedAt`;

const RECORD_COLUMNS = `id, name, kind, tenant, hash, created_at AS createdAt, expires_at AS expiresAt, revoked_at AS revokedAt`;

/** Bearer tokens in SQLite, stored only as hashes. */
export class TokenStore {
  private readonly statements;

  /** `onChange`: every token created or revoked here (not those applied from other servers), for `ctx.tokens`. */
  constructor(
    store: Pick<PluginStore, 'migrate' | 'db'>,
    private readonly onChange: (record: TokenRecord) => void = () => {},
  ) {
    store.migrate(MIGRATIONS);
    const db = store.db;
    this.statements = {
      insert: db.prepare(
        `INSERT INTO auth_bearer_tokens (id, name, kind, tenant, hash, created_at, expires_at)
         VALUES (@id, @name, @kind, @tenant, @hash, @createdAt, @expiresAt)`,
      ),
      byHash: db.prepare(`SELECT ${COLUMNS}, hash FROM auth_bearer_tokens WHERE hash = ?`),
      byId: db.prepare(`SELECT ${COLUMNS} FROM auth_bearer_tokens WHERE id = ?`),
      list: db.prepare(`SELECT ${COLUMNS} FROM auth_bearer_tokens ORDER BY created_at, id`),
      revoke: db.prepare(`UPDATE auth_bearer_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`),
      recordById: db.prepare(`SELECT ${RECORD_COLUMNS} FROM auth_bearer_tokens WHERE id = ?`),
      records: db.prepare(`SELECT ${RECORD_COLUMNS} FROM auth_bearer_tokens ORDER BY created_at, id`),
      hashTaken: db.prepare(`SELECT id FROM auth_bearer_tokens WHERE hash = ?`),
      insertRemote: db.prepare(
        `INSERT INTO auth_bearer_tokens (id, name, kind, tenant, hash, created_at, expires_at, revoked_at)
         VALUES (@id, @name, @kind, @tenant, @hash, @createdAt, @expiresAt, @revokedAt)`,
      ),
      revokeAt: db.prepare(`UPDATE auth_bearer_tokens SET revoked_at = ? WHERE id = ? AND (revoked_at IS NULL OR revoked_at > ?)`),
      touch: db.prepare(`UPDATE auth_bearer_tokens SET last_used_at = ? WHERE id = ?`),
      activeAdmins: db.prepare(
        `SELECT COUNT(*) AS count FROM auth_bearer_tokens
         WHERE kind = 'admin' AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)`,
      ),
    };
  }

  /** Creates a token; the returned `token` is the only copy of the secret there will ever be. */
  create(input: { name: string; tenant: string | null; expiresInMs: number | null }, now = Date.now()): TokenInfo & { token: string } {
    const token = generateToken();
    const info: TokenInfo = {
      id: generateId(),
      name: input.name,
      kind: input.tenant === null ? 'admin' : 'tenant',
      tenant: input.tenant,
      createdAt: now,
      expiresAt: input.expiresInMs === null ? null : now + input.expiresInMs,
      revokedAt: null,
      lastUsedAt: null,
    };
    this.statements.insert.run({ ...info, hash: hashToken(token) });
    this.onChange(this.record(info.id)!);
    return { ...info, token };
  }

  /** The live token behind this secret, or undefined when it is unknown, malformed, revoked or expired. */
  find(token: string, now = Date.now()): TokenInfo | undefined {
    if (!isTokenShaped(token)) return undefined;
    const hash = hashToken(token);
    const row = this.statements.byHash.get(hash) as TokenRow | undefined;
    if (!row || !sameHash(row.hash, hash)) return undefined;
    if (row.revokedAt !== null) return undefined;
    if (row.expiresAt !== null && row.expiresAt <= now) return undefined;
    const { hash: _hash, ...info } = row;
    return info;
  }

  /** `find` for a request that is being authenticated: also records that the token was used. */
  verify(token: string, now = Date.now()): TokenInfo | undefined {
    const info = this.find(token, now);
    if (info && (info.lastUsedAt === null || now - info.lastUsedAt >= TOUCH_EVERY_MS)) {
      this.statements.touch.run(now, info.id);
      info.lastUsedAt = now;
    }
    return info;
  }

  get(id: string): TokenInfo | undefined {
    return this.statements.byId.get(id) as TokenInfo | undefined;
  }

  list(): TokenInfo[] {
    return this.statements.list.all() as TokenInfo[];
  }

  /** Revokes at once (every request re-checks the table); revoking twice keeps the first time. */
  revoke(id: string, now = Date.now()): TokenInfo | undefined {
    if (this.statements.revoke.run(now, id).changes > 0) this.onChange(this.record(id)!);
    return this.get(id);
  }

  /** A token as servers exchange it (its hash, never the secret). */
  record(id: string): TokenRecord | undefined {
    return this.statements.recordById.get(id) as TokenRecord | undefined;
  }

  records(): TokenRecord[] {
    return this.statements.records.all() as TokenRecord[];
  }

  /**
   * A token another server created or revoked (`ctx.tokens`): a new one is stored as it is; a known one only
   * takes an earlier revocation (names, scope and expiry never change, a revocation is never undone). A record
   * that clashes (same id with another hash, or a hash already held by another id) is refused: null.
   */
  applyRemote(record: TokenRecord): TokenRecord | null {
    if (!isTokenRecord(record)) return null;
    const known = this.record(record.id);
    if (!known) {
      if (this.statements.hashTaken.get(record.hash)) return null;
      this.statements.insertRemote.run(record);
      return this.record(record.id) ?? null;
    }
    if (!sameHash(known.hash, record.hash)) return null;
    if (record.revokedAt !== null) this.statements.revokeAt.run(record.revokedAt, record.id, record.revokedAt);
    return this.record(record.id) ?? null;
  }

  hasActiveAdmin(now = Date.now()): boolean {
    return (this.statements.activeAdmins.get(now) as { count: number }).count > 0;
  }
}

const ID = /^tok_[0-9a-f]{16}$/;
const HASH = /^[0-9a-f]{64}$/;
const time = (value: unknown): boolean => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;

/** A replicated record is data from another server: its every field is checked before it reaches the table. */
export function isTokenRecord(value: unknown): value is TokenRecord {
  if (typeof value !== 'object' || value === null) return false;
  const r = value as Record<string, unknown>;
  if (typeof r.id !== 'string' || !ID.test(r.id) || typeof r.hash !== 'string' || !HASH.test(r.hash)) return false;
  if (typeof r.name !== 'string' || r.name.length < 1 || r.name.length > 64) return false;
  if (r.kind === 'admin' ? r.tenant !== null : r.kind !== 'tenant' || typeof r.tenant !== 'string' || !DNS_LABEL.test(r.tenant)) return false;
  return time(r.createdAt) && (r.expiresAt === null || time(r.expiresAt)) && (r.revokedAt === null || time(r.revokedAt));
}

/** The identity a verified token stands for. */
export function identityOf(token: TokenInfo): Identity {
  return token.kind === 'tenant' && token.tenant !== null
    ? { kind: 'tenant', tenant: token.tenant, name: token.name }
    : { kind: 'admin', name: token.name };
}
