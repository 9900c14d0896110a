// The per-instance actions, shared by the table and the instance page. Destructive ones ask first.
import { api, messageOf, seg } from './api.ts';
import { dialogs } from './dialogs.svelte.ts';
import { instances } from './instances.svelte.ts';
import { notices } from './notices.svelte.ts';
import type { InstanceView } from './types.ts';

const path = (row: Pick<InstanceView, 'service' | 'id'>): string => `/api/instances/${seg(row.service)}/${seg(row.id)}`;

/** Fleet mode: a row with a node is acted on by its owner, through the node this page talks to. */
const onOwner = (row: InstanceView): boolean => typeof row.node === 'string';
const fleetPath = (row: InstanceView, action: 'start' | 'restart' | 'hibernate' | 'stop'): string =>
  `/api/fleet/instances/${seg(row.service)}/${seg(row.id)}/${action}`;

async function run(what: string, key: string, work: () => Promise<void>): Promise<void> {
  try {
    await work();
    notices.push(`${what}: ${key}`);
  } catch (error) {
    notices.push(`${what} ${key} failed: ${messageOf(error)}`, true);
  }
}

export async function restart(row: InstanceView): Promise<void> {
  if (!(await dialogs.confirm(`Restart ${row.key}?`, 'Its process is stopped (requests in flight may finish) and a new one started.', 'Restart'))) return;
  await run('restarted', row.key, async () => instances.apply(await api<InstanceView>('POST', onOwner(row) ? fleetPath(row, 'restart') : `${path(row)}/restart`)));
}

export async function stop(row: InstanceView): Promise<void> {
  if (!(await dialogs.confirm(`Stop ${row.key}?`, 'It is drained, stopped and removed from Tenement (its data directory is kept unless the service says otherwise).', 'Stop and remove'))) return;
  await run('stopped', row.key, async () => {
    if (onOwner(row)) await api('POST', fleetPath(row, 'stop'));
    else await api('DELETE', path(row));
    instances.remove(row.key);
  });
}

export async function hibernate(row: InstanceView): Promise<void> {
  if (!(await dialogs.confirm(`Hibernate ${row.key}?`, 'Its process is stopped now, without waiting for requests in flight; the next request wakes it.', 'Hibernate'))) return;
  await run('hibernated', row.key, async () => instances.apply(await api<InstanceView>('POST', onOwner(row) ? fleetPath(row, 'hibernate') : `${path(row)}/hibernate`)));
}

export async function wake(row: InstanceView): Promise<void> {
  await run('started', row.key, async () => {
    const answer = await api<InstanceView>('POST', onOwner(row) ? fleetPath(row, 'start') : path(row));
    instances.apply(answer);
  });
}

export async function weight(row: InstanceView): Promise<void> {
  const value = await dialogs.askNumber(`Weight of ${row.key}`, 'Its share of the service’s traffic, 0 (none) to 100.', {
    label: 'Weight',
    min: 0,
    max: 100,
    value: row.weight,
  });
  if (value === null) return;
  const target = onOwner(row) ? `/api/fleet/instances/${seg(row.service)}/${seg(row.id)}/weight` : `${path(row)}/weight`;
  await run(`weight ${value}`, row.key, async () => instances.apply(await api<InstanceView>('PUT', target, { weight: value })));
}

export const canWake = (state: string): boolean => state === 'hibernated' || state === 'stopped' || state === 'failed' || state === 'created' || state === 'placed';
/** Fleet mode: set on the instance's owner, through the node this page talks to; a placed-only row has no weight yet. */
export const canWeigh = (row: InstanceView): boolean => row.state !== 'placed';
export const canHibernate = (state: string): boolean => state === 'running';
