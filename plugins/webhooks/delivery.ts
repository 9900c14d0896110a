/**
 * Sends what the outbox holds: each webhook has one request in flight at a time (its deliveries go out in
 * order, and a receiver that hangs holds up only its own queue), failures are retried with jittered
 * exponential backoff, and a delivery is given up (recorded as failed) after `maxAttempts` or `maxAge`.
 * Delivery is at least once: a server killed mid-request sends that row again after its restart, with the same
 * `Tenement-Delivery` id for receivers to deduplicate on.
 */
import { backoffDelay } from '../../core/backoff.ts';
import type { Logger } from '../../core/logger.ts';
import type { Outbox, OutboxRow } from './outbox.ts';
import type { DeliveryConfig, WebhookConfig } from './schema.ts';
import { send } from './send.ts';
import { sign, SIGNATURE_HEADER } from './sign.ts';

export type Outcome = 'delivered' | 'retried' | 'failed' | 'dropped';

/** A pump wakes at least this often, so rows whose time came while it slept are never stranded. */
const MAX_SLEEP_MS = 60_000;

export class Delivery {
  private readonly busy = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  /** Set once close() stops waiting: the store is closed after the plugins, so nothing may be written then. */
  private detached = false;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly outbox: Outbox,
    private readonly webhooks: ReadonlyMap<string, WebhookConfig>,
    private readonly config: DeliveryConfig,
    private readonly count: (outcome: Outcome) => void,
    private readonly log: Logger,
  ) {}

  /** Pending rows for webhooks removed from the config are recorded as failed, then the first pump runs. */
  start(): void {
    const now = Date.now();
    for (const id of this.outbox.orphans([...this.webhooks.keys()])) {
      this.outbox.markFailed(id, null, 'the webhook is no longer in the config', now, false);
      this.count('failed');
    }
    this.kick();
  }

  /** Something became due (a new alert, a finished attempt): look at the outbox now. */
  kick(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.pump(), 0);
    this.timer.unref();
  }

  private pump(): void {
    this.timer = null;
    if (this.closed) return;
    const now = Date.now();
    for (const [name, webhook] of this.webhooks) {
      if (this.busy.has(name)) continue;
      const row = this.outbox.due(name, now);
      if (!row) continue;
      this.busy.add(name);
      const attempt = this.attempt(row, webhook).catch((error: unknown) => {
        this.log.error({ err: String(error), delivery: row.delivery }, 'webhook delivery attempt failed unexpectedly');
      });
      this.inFlight.add(attempt);
      void attempt.finally(() => {
        this.inFlight.delete(attempt);
        this.busy.delete(name);
        this.kick();
      });
    }
    // Webhooks with a request in flight are left out: their next row is looked at when that request ends
    // (kick), so a hanging receiver with a queue behind it does not make this loop spin.
    const next = this.outbox.nextDue(this.busy);
    if (next === null || this.closed) return;
    this.timer = setTimeout(() => this.pump(), Math.min(MAX_SLEEP_MS, Math.max(0, next - Date.now())));
    this.timer.unref();
  }

  private async attempt(row: OutboxRow, webhook: WebhookConfig): Promise<void> {
    const started = Date.now();
    if (started - row.createdAt >= this.config.maxAge) {
      this.outbox.markFailed(row.id, null, `not delivered within maxAge (${row.attempts} attempts; last: ${row.lastError ?? 'none'})`, started, false);
      this.count('failed');
      return;
    }
    const headers: Record<string, string> = {
      'user-agent': 'tenement-webhooks/1',
      'tenement-delivery': row.delivery,
      'tenement-alert': row.alert,
      'tenement-event': row.kind,
      'tenement-attempt': String(row.attempts + 1),
    };
    if (webhook.secret !== undefined) headers[SIGNATURE_HEADER] = sign(webhook.secret, row.body, started / 1000);
    const result = await send(webhook.url, row.body, headers, { timeoutMs: this.config.timeout });
    // Too late to record: the row stays pending and is sent again after the restart (receivers dedupe on the id).
    if (this.detached) return;
    const now = Date.now();
    if (result.ok) {
      this.outbox.markDelivered(row.id, result.status!, now);
      this.count('delivered');
      return;
    }
    const attempts = row.attempts + 1;
    const error = result.error ?? 'failed';
    if (attempts >= this.config.maxAttempts) {
      this.outbox.markFailed(row.id, result.status, `gave up after ${attempts} attempts: ${error}`, now, true);
      this.count('failed');
      this.log.warn({ webhook: webhook.name, delivery: row.delivery, alert: row.alert, error }, 'webhook delivery failed for good');
      return;
    }
    const next = now + backoffDelay(attempts - 1, this.config.backoff.base, this.config.backoff.max);
    this.outbox.markRetry(row.id, result.status, error, next, now);
    this.count('retried');
    this.log.info({ webhook: webhook.name, delivery: row.delivery, attempt: attempts, error, retryAt: new Date(next).toISOString() }, 'webhook delivery failed, will retry');
  }

  /** Stops scheduling; attempts under way get a short grace to finish (each is bounded by its timeout anyway). */
  async close(graceMs = 2_000): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(this.inFlight), new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    this.detached = true;
  }
}
