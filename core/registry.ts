import type { ServiceConfig } from './config/schema.ts';
import { ErrorCodes, TenementError } from './errors.ts';
import { Instance } from './instance.ts';
import { canTransition } from './lifecycle.ts';
import type { InstanceEvent, InstanceEventType, InstanceState } from './types.ts';

export type TransitionListener = (instance: Instance, event: InstanceEvent) => void;

/** Every known instance, by key and by service, and the only place a state changes. */
export class InstanceRegistry {
  private readonly byKey = new Map<string, Instance>();
  private readonly byService = new Map<string, Instance[]>();

  constructor(
    private readonly logBufferBytes: number,
    private readonly onTransition: TransitionListener,
  ) {}

  get size(): number {
    return this.byKey.size;
  }

  get(service: string, id: string): Instance | undefined {
    return this.byKey.get(`${service}:${id}`);
  }

  getByKey(key: string): Instance | undefined {
    return this.byKey.get(key);
  }

  ofService(service: string): readonly Instance[] {
    return this.byService.get(service) ?? [];
  }

  list(filter: { service?: string; state?: InstanceState } = {}): Instance[] {
    const source = filter.service ? this.ofService(filter.service) : [...this.byKey.values()];
    return source.filter((i) => !filter.state || i.state === filter.state);
  }

  create(service: string, id: string, config: ServiceConfig): Instance {
    const existing = this.get(service, id);
    if (existing) return existing;
    const instance = new Instance(service, id, config, this.logBufferBytes);
    this.byKey.set(instance.key, instance);
    const siblings = this.byService.get(service);
    if (siblings) siblings.push(instance);
    else this.byService.set(service, [instance]);
    this.onTransition(instance, this.event(instance, 'created', 'created', 'created'));
    return instance;
  }

  remove(instance: Instance, reason?: string): void {
    if (!this.byKey.delete(instance.key)) return;
    const siblings = this.byService.get(instance.service);
    if (siblings) {
      const rest = siblings.filter((i) => i !== instance);
      if (rest.length > 0) this.byService.set(instance.service, rest);
      else this.byService.delete(instance.service);
    }
    this.onTransition(instance, this.event(instance, 'removed', instance.state, instance.state, reason));
  }

  transition(instance: Instance, to: InstanceState, type: InstanceEventType, reason?: string): void {
    const from = instance.state;
    if (!canTransition(from, to)) {
      throw new TenementError(ErrorCodes.INVALID_STATE, `${instance.key} cannot go from ${from} to ${to} (${type})`);
    }
    instance.setState(to);
    this.onTransition(instance, this.event(instance, type, from, to, reason));
  }

  private event(
    instance: Instance,
    type: InstanceEventType,
    from: InstanceState,
    to: InstanceState,
    reason?: string,
  ): InstanceEvent {
    const event: InstanceEvent = { type, instance: instance.key, service: instance.service, id: instance.id, from, to, at: Date.now() };
    if (reason !== undefined) event.reason = reason;
    return event;
  }
}
