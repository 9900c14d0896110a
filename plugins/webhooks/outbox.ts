/**
 * The durable outbox: every alert is written here, one row per webhook, in the same synchronous call that raised
 * it, before any attempt to send it. A `ten serve` killed at any point finds its undelivered rows on the next
 * start. Bounded: at most `maxRows` rows; finished ones (delivered, failed) make room first.
 */
import { randomBytes } from 'node:crypto';
import type { PluginStore } from '../../core/plugin-context.ts';
import type { MigrationStep } from '../../core/store.ts';
import type { AlertKind } from './incidents.ts';

/** The plugin's name, and the owner its migrations are versioned under (keep it). */
export const OWNER = 'webhooks';

export const OUTBOX_MIGRATIONS: readonly MigrationStep[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE webhooks_outbox (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery    TEXT NOT NULL UNIQUE,
        alert       TEXT NOT NULL,
        webhook     TEXT NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('firing', 'resolved')),
        rule        TEXT NOT NULL,
        service     TEXT,
        instance    TEXT,
        summary     TEXT NOT NULL,
        body        TEXT NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        created_at  INTEGER NOT NULL,
        next_at     INTEGER,
        last_at     INTEGER,
        last_status INTEGER,
        last_error  TEXT,
        done_at     INTEGER
      );
      CREATE INDEX webhooks_outbox_due ON webhooks_outbox (state, webhook, next_at);
    `,
  },
];

export type DeliveryState = 'pending' | 'delivered' | 'failed';

export interface OutboxRow {
  id: number;
  delivery: string;
  alert: string;
  webhook: string;
  kind: AlertKind;
  rule: string;
  service: string | null;
  instance: string | null;
  summary: string;
  body: string;
  state: DeliveryState;
  attempts: number;
  createdAt: number;
  nextAt: number | null;
  lastAt: number | null;
  lastStatus: number | null;
  lastError: string | null;
  doneAt: number | null;
}

export type NewDelivery = Pick<OutboxRow, 'alert' | 'webhook' | 'kind' | 'rule' | 'service' | 'instance' | 'summary' | 'body'>;

const COLUMNS = `id, delivery, alert, webhook, kind, rule, service, instance, summary, body, state, attempts, created_at AS createdAt,
  next_at AS nextAt, last_at AS lastAt, last_status AS lastStatus, last_error AS lastError, done_at AS doneAt`;

/** Errors recorded per attempt are for people reading `ten alerts`: one short line. */
const MAX_ERROR = 500;

export class Outbox {
  private readonly statements;

  constructor(
    store: Pick<PluginStore, 'migrate' | 'db'>,
    private readonly maxRows: number,
  ) {
    store.migrate(OUTBOX_MIGRATIONS);
    const db = store.db;
    this.statements = {
      insert: db.prepare(
        `INSERT INTO webhooks_outbox (delivery, alert, webhook, kind, rule, service, instance, summary, body, state, created_at, next_at)
         VALUES (@delivery, @alert, @webhook, @kind, @rule, @service, @instance, @summary, @body, 'pending', @now, @now)`,
      ),
      count: db.prepare(`SELECT count(*) AS n FROM webhooks_outbox`),
      pending: db.prepare(`SELECT count(*) AS n FROM webhooks_outbox WHERE state = 'pending'`),
      pruneFinished: db.prepare(
        `DELETE FROM webhooks_outbox WHERE id IN (SELECT id FROM webhooks_outbox WHERE state != 'pending' ORDER BY id LIMIT ?)`,
      ),
      due: db.prepare(`SELECT ${COLUMNS} FROM webhooks_outbox WHERE state = 'pending' AND webhook = ? AND next_at <= ? ORDER BY next_at, id LIMIT 1`),
      nextDue: db.prepare(`SELECT min(next_at) AS at FROM webhooks_outbox WHERE state = 'pending' AND webhook NOT IN (SELECT value FROM json_each(?))`),
      delivered: db.prepare(
        `UPDATE webhooks_outbox SET state = 'delivered', attempts = attempts + 1, last_at = @now, last_status = @status, last_error = NULL,
         done_at = @now, next_at = NULL WHERE id = @id AND state = 'pending'`,
      ),
      retry: db.prepare(
        `UPDATE webhooks_outbox SET attempts = attempts + 1, last_at = @now, last_status = @status, last_error = @error, next_at = @next
         WHERE id = @id AND state = 'pending'`,
      ),
      failed: db.prepare(
        `UPDATE webhooks_outbox SET state = 'failed', attempts = attempts + @attempted, last_at = @now, last_status = coalesce(@status, last_status),
         last_error = @error, done_at = @now, next_at = NULL WHERE id = @id AND state = 'pending'`,
      ),
      orphans: db.prepare(`SELECT id FROM webhooks_outbox WHERE state = 'pending' AND webhook NOT IN (SELECT value FROM json_each(?))`),
      list: db.prepare(
        `SELECT ${COLUMNS} FROM webhooks_outbox
         WHERE (@state IS NULL OR state = @state) AND (@webhook IS NULL OR webhook = @webhook) AND (@before IS NULL OR id < @before)
         ORDER BY id DESC LIMIT @limit`,
      ),
    };
  }

  /** Writes one pending row; false when the outbox is full of pending rows (the caller counts it as dropped). */
  add(delivery: NewDelivery, now = Date.now()): boolean {
    const count = (this.statements.count.get() as { n: number }).n;
    if (count >= this.maxRows) this.statements.pruneFinished.run(count - this.maxRows + 1);
    if ((this.statements.count.get() as { n: number }).n >= this.maxRows) return false;
    this.statements.insert.run({ ...delivery, delivery: `dlv_${randomBytes(8).toString('hex')}`, now });
    return true;
  }

  pendingCount(): number {
    return (this.statements.pending.get() as { n: number }).n;
  }

  /** The webhook's oldest due row. */
  due(webhook: string, now: number): OutboxRow | undefined {
    return this.statements.due.get(webhook, now) as OutboxRow | undefined;
  }

  /** When the earliest pending row of a webhook other than `busy` ones is due, or null when none is pending. */
  nextDue(busy: Iterable<string> = []): number | null {
    return (this.statements.nextDue.get(JSON.stringify([...busy])) as { at: number | null }).at;
  }

  markDelivered(id: number, status: number, now: number): void {
    this.statements.delivered.run({ id, status, now });
  }

  markRetry(id: number, status: number | null, error: string, next: number, now: number): void {
    this.statements.retry.run({ id, status, error: error.slice(0, MAX_ERROR), next, now });
  }

  /** `attempted`: whether this call records an attempt (false when giving up on age or a removed webhook). */
  markFailed(id: number, status: number | null, error: string, now: number, attempted: boolean): void {
    this.statements.failed.run({ id, status, error: error.slice(0, MAX_ERROR), now, attempted: attempted ? 1 : 0 });
  }

  /** Pending rows for webhooks no longer in the config: nobody would ever send them. */
  orphans(webhooks: readonly string[]): number[] {
    return (this.statements.orphans.all(JSON.stringify(webhooks)) as Array<{ id: number }>).map((row) => row.id);
  }

  list(filter: { state?: DeliveryState; webhook?: string; before?: number; limit: number }): OutboxRow[] {
    return this.statements.list.all({
      state: filter.state ?? null,
      webhook: filter.webhook ?? null,
      before: filter.before ?? null,
      limit: filter.limit,
    }) as OutboxRow[];
  }
}
