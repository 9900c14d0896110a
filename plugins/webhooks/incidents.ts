/**
 * One incident, one alert: every rule reports "this subject is in trouble" (trigger) and "it is fine again"
 * (clear); this file turns that into at most one `firing` alert per incident and a `resolved` one when it clears.
 * The cool-down keeps a flapping subject quiet: an incident that opens within `cooldown` of the last alert for
 * the same rule and subject is held back, and is announced only if it is still open once the cool-down is over.
 */
import { randomBytes } from 'node:crypto';
import type { AlertRule } from './schema.ts';

export type AlertKind = 'firing' | 'resolved';

export interface Alert {
  /** Shared by the firing and resolved messages of one incident. */
  id: string;
  kind: AlertKind;
  rule: string;
  /** What the rule watches: `failed`, `oom`, `wake-failed`, `unhealthy`, `restarts`, `storage` or `metric`. */
  on: string;
  service: string | null;
  /** `service:id`, or null for an alert about no one instance (a server-wide metric). */
  instance: string | null;
  summary: string;
  detail: string | null;
  startedAt: number;
  at: number;
  /** Triggers merged into this incident (repeated failures within it). */
  count: number;
  metric?: { name: string; labels: Record<string, string>; value: number; above?: number; below?: number };
}

/** Who an incident is about; `key` tells subjects of one rule apart (an instance key, a metric series). */
export interface Subject {
  key: string;
  service: string | null;
  instance: string | null;
}

interface Incident {
  alert: Alert;
  rule: AlertRule;
  notified: boolean;
  lastAt: number;
}

/** Open incidents and cool-down memories are bounded: a storm of distinct subjects cannot grow memory forever. */
const MAX_OPEN = 10_000;
const MAX_REMEMBERED = 10_000;

/** Details come from instances' exit reasons and health checks: kept short, they travel in every message. */
const MAX_DETAIL = 2_000;

export function alertId(): string {
  return `alt_${randomBytes(8).toString('hex')}`;
}

export class Incidents {
  private readonly open = new Map<string, Incident>();
  /** rule + subject -> when its last firing alert went out. */
  private readonly lastFired = new Map<string, number>();
  dropped = 0;

  constructor(
    private readonly send: (alert: Alert, rule: AlertRule) => void,
    private readonly defaultCooldown: number,
  ) {}

  private cooldown(rule: AlertRule): number {
    return rule.cooldown ?? this.defaultCooldown;
  }

  isOpen(rule: AlertRule, subjectKey: string): boolean {
    return this.open.has(`${rule.name}\0${subjectKey}`);
  }

  /** Subject keys of the rule's open incidents. */
  openKeys(rule: AlertRule): string[] {
    const prefix = `${rule.name}\0`;
    return [...this.open.keys()].filter((key) => key.startsWith(prefix)).map((key) => key.slice(prefix.length));
  }

  /** When the incident last triggered, or undefined when none is open. */
  lastTrigger(rule: AlertRule, subjectKey: string): number | undefined {
    return this.open.get(`${rule.name}\0${subjectKey}`)?.lastAt;
  }

  trigger(rule: AlertRule, on: string, subject: Subject, summary: string, detail: string | null, now: number, metric?: Alert['metric']): void {
    const key = `${rule.name}\0${subject.key}`;
    const current = this.open.get(key);
    if (current) {
      current.alert.count += 1;
      current.lastAt = now;
      if (metric) current.alert.metric = metric;
      return;
    }
    if (this.open.size >= MAX_OPEN) {
      this.dropped += 1;
      return;
    }
    const alert: Alert = {
      id: alertId(),
      kind: 'firing',
      rule: rule.name,
      on,
      service: subject.service,
      instance: subject.instance,
      summary,
      detail: detail === null ? null : detail.slice(0, MAX_DETAIL),
      startedAt: now,
      at: now,
      count: 1,
    };
    if (metric) alert.metric = metric;
    const incident: Incident = { alert, rule, notified: false, lastAt: now };
    this.open.set(key, incident);
    const last = this.lastFired.get(key);
    if (last === undefined || now - last >= this.cooldown(rule)) this.notify(key, incident, now);
  }

  /** The subject is fine again: a resolved message if its firing went out; a held-back incident ends silently. */
  clear(rule: AlertRule, subjectKey: string, summary: string, now: number): void {
    const key = `${rule.name}\0${subjectKey}`;
    const incident = this.open.get(key);
    if (!incident) return;
    this.open.delete(key);
    if (!incident.notified) return;
    this.send({ ...incident.alert, kind: 'resolved', summary, at: now }, rule);
  }

  /** Held-back incidents still open once their cool-down is over are announced now. */
  release(now: number): void {
    for (const [key, incident] of this.open) {
      if (incident.notified) continue;
      const last = this.lastFired.get(key);
      if (last === undefined || now - last >= this.cooldown(incident.rule)) this.notify(key, incident, now);
    }
  }

  private notify(key: string, incident: Incident, now: number): void {
    incident.notified = true;
    this.lastFired.delete(key);
    this.lastFired.set(key, now);
    if (this.lastFired.size > MAX_REMEMBERED) {
      const oldest = this.lastFired.keys().next().value;
      if (oldest !== undefined) this.lastFired.delete(oldest);
    }
    this.send({ ...incident.alert, kind: 'firing', at: now }, incident.rule);
  }
}
