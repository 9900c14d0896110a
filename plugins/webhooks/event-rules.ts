/**
 * Lifecycle rules: what the kernel's `stateChange` events (transitions and the notices `unhealthy`, `oom`,
 * `storage-warning`) say about an instance, turned into triggers and clears of incidents. Conditions that last
 * (unhealthy for a duration, restarts in a window, storage above a share) are re-read on every evaluation tick.
 */
import type { InstanceDirectory } from '../../core/plugin-context.ts';
import type { InstanceEvent, InstanceView } from '../../core/types.ts';
import type { Incidents, Subject } from './incidents.ts';
import type { EventRule } from './schema.ts';

/** Events that say the instance runs again. */
const RUNNING_AGAIN: ReadonlySet<string> = new Set(['ready', 'woken']);

/** Restart times remembered per instance are at most `count` per rule; instances remembered are bounded too. */
const MAX_TRACKED = 10_000;

function subjectOf(service: string, key: string): Subject {
  return { key, service, instance: key };
}

function appliesTo(rule: EventRule, service: string): boolean {
  return rule.services === undefined || rule.services.includes(service);
}

export class EventRules {
  /** rule -> instance key -> since when it has been unhealthy (waiting for `for`). */
  private readonly unhealthySince = new Map<EventRule, Map<string, { since: number; detail: string | null }>>();
  /** rule -> instance key -> its latest automatic restarts (at most `count`). */
  private readonly restarts = new Map<EventRule, Map<string, number[]>>();

  constructor(
    private readonly rules: readonly EventRule[],
    private readonly incidents: Incidents,
    private readonly instances: Pick<InstanceDirectory, 'getByKey' | 'describe' | 'list'>,
    private readonly defaultCooldown: number,
  ) {
    for (const rule of rules) {
      if (rule.on === 'unhealthy') this.unhealthySince.set(rule, new Map());
      if (rule.on === 'restarts') this.restarts.set(rule, new Map());
    }
  }

  onEvent(event: InstanceEvent): void {
    const now = event.at;
    const subject = subjectOf(event.service, event.instance);
    for (const rule of this.rules) {
      if (!appliesTo(rule, event.service)) continue;
      if (event.type === 'removed') {
        this.unhealthySince.get(rule)?.delete(event.instance);
        this.restarts.get(rule)?.delete(event.instance);
        this.incidents.clear(rule, event.instance, `${event.instance} was removed`, now);
        continue;
      }
      switch (rule.on) {
        case 'failed':
          if (event.type === 'failed') this.incidents.trigger(rule, 'failed', subject, `${event.instance} failed`, event.reason ?? null, now);
          else if (RUNNING_AGAIN.has(event.type)) this.incidents.clear(rule, event.instance, `${event.instance} is running again`, now);
          break;
        case 'wake-failed':
          if (event.from === 'waking' && (event.type === 'failed' || event.type === 'restarting')) {
            this.incidents.trigger(rule, 'wake-failed', subject, `${event.instance} could not be woken`, event.reason ?? null, now);
          } else if (RUNNING_AGAIN.has(event.type)) this.incidents.clear(rule, event.instance, `${event.instance} is running again`, now);
          break;
        case 'oom':
          if (event.type === 'oom') this.incidents.trigger(rule, 'oom', subject, `${event.instance} was OOM-killed`, event.reason ?? null, now);
          break;
        case 'storage':
          if (event.type === 'storage-warning' && rule.above === undefined) {
            this.incidents.trigger(rule, 'storage', subject, `${event.instance} storage is above its warning threshold`, event.reason ?? null, now);
          }
          break;
        case 'unhealthy':
          if (event.type !== 'unhealthy') break;
          if (rule.for === 0) this.incidents.trigger(rule, 'unhealthy', subject, `${event.instance} is unhealthy`, event.reason ?? null, now);
          else {
            const pending = this.unhealthySince.get(rule)!;
            if (!pending.has(event.instance) && pending.size < MAX_TRACKED) pending.set(event.instance, { since: now, detail: event.reason ?? null });
          }
          break;
        case 'restarts': {
          if (event.type !== 'restarting') break;
          const byInstance = this.restarts.get(rule)!;
          const times = (byInstance.get(event.instance) ?? []).filter((t) => now - t < rule.within);
          times.push(now);
          if (times.length > rule.count) times.splice(0, times.length - rule.count);
          if (byInstance.has(event.instance) || byInstance.size < MAX_TRACKED) byInstance.set(event.instance, times);
          if (times.length >= rule.count) {
            this.incidents.trigger(rule, 'restarts', subject, `${event.instance} restarted ${times.length} times within ${humanMs(rule.within)}`, event.reason ?? null, now);
          }
          break;
        }
      }
    }
  }

  /** Re-reads the conditions that last: durations that ran out, windows that emptied, storage shares. */
  async tick(now: number): Promise<void> {
    for (const rule of this.rules) {
      if (rule.on === 'oom') {
        // A point event: the incident ends after a cool-down without another.
        for (const key of this.incidents.openKeys(rule)) {
          const last = this.incidents.lastTrigger(rule, key);
          if (last !== undefined && now - last >= (rule.cooldown ?? this.defaultCooldown)) {
            this.incidents.clear(rule, key, `${key} had no OOM kill since ${new Date(last).toISOString()}`, now);
          }
        }
      } else if (rule.on === 'unhealthy') this.tickUnhealthy(rule, now);
      else if (rule.on === 'restarts') this.tickRestarts(rule, now);
      else if (rule.on === 'storage') await this.tickStorage(rule, now);
    }
  }

  private healthy(view: InstanceView | undefined): boolean {
    return view !== undefined && view.state === 'running' && view.health === 'healthy';
  }

  private tickUnhealthy(rule: EventRule & { on: 'unhealthy' }, now: number): void {
    const pending = this.unhealthySince.get(rule)!;
    for (const [key, { since, detail }] of pending) {
      const view = this.instances.getByKey(key);
      if (view === undefined || this.healthy(view)) pending.delete(key);
      else if (now - since >= rule.for) {
        pending.delete(key);
        this.incidents.trigger(rule, 'unhealthy', subjectOf(view.service, key), `${key} has been unhealthy for ${humanMs(now - since)}`, detail, now);
      }
    }
    for (const key of this.incidents.openKeys(rule)) {
      const view = this.instances.getByKey(key);
      if (view === undefined || this.healthy(view)) this.incidents.clear(rule, key, `${key} is healthy again`, now);
    }
  }

  private tickRestarts(rule: EventRule & { on: 'restarts' }, now: number): void {
    const byInstance = this.restarts.get(rule)!;
    for (const [key, times] of byInstance) {
      const recent = times.filter((t) => now - t < rule.within);
      if (recent.length === 0) byInstance.delete(key);
      else byInstance.set(key, recent);
    }
    for (const key of this.incidents.openKeys(rule)) {
      if ((byInstance.get(key)?.length ?? 0) < rule.count) {
        this.incidents.clear(rule, key, `${key} restarted fewer than ${rule.count} times in the last ${humanMs(rule.within)}`, now);
      }
    }
  }

  /** Storage share from the storage plugin's facts (cached figures, no scan); instances without a limit are skipped. */
  private async tickStorage(rule: EventRule & { on: 'storage' }, now: number): Promise<void> {
    const watched = new Set(this.incidents.openKeys(rule));
    if (rule.above !== undefined) {
      // Only instances of services with a storage limit have a share to read.
      for (const key of this.storageCandidates(rule)) watched.add(key);
    }
    for (const key of watched) {
      const view = this.instances.getByKey(key);
      if (view === undefined) {
        this.incidents.clear(rule, key, `${key} is gone`, now);
        continue;
      }
      const share = await this.storageShare(view);
      if (share === null) continue;
      const threshold = rule.above ?? view.config.limits?.storageWarn ?? 0.9;
      if (share >= threshold) {
        if (rule.above !== undefined) {
          this.incidents.trigger(rule, 'storage', subjectOf(view.service, key), `${key} storage is at ${percent(share)} of its limit`, `threshold ${percent(threshold)}`, now);
        }
      } else this.incidents.clear(rule, key, `${key} storage is back under ${percent(threshold)} (${percent(share)})`, now);
    }
  }

  /** Instances of the rule's services that have a storage limit (the others have no share to read). */
  private storageCandidates(rule: EventRule): string[] {
    return this.instances
      .list()
      .filter((view) => view.config.limits?.storage !== undefined && appliesTo(rule, view.service))
      .map((view) => view.key);
  }

  private async storageShare(view: InstanceView): Promise<number | null> {
    const facts = await this.instances.describe(view);
    const storage = facts.storage as { usedBytes?: unknown; limitBytes?: unknown } | null | undefined;
    if (typeof storage?.usedBytes !== 'number' || typeof storage.limitBytes !== 'number' || storage.limitBytes <= 0) return null;
    return storage.usedBytes / storage.limitBytes;
  }
}

function percent(share: number): string {
  return `${Math.round(share * 1000) / 10}%`;
}

export function humanMs(ms: number): string {
  if (ms % 3_600_000 === 0 && ms >= 3_600_000) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms >= 60_000) return `${ms / 60_000}m`;
  if (ms % 1_000 === 0 && ms >= 1_000) return `${ms / 1_000}s`;
  return `${ms}ms`;
}
