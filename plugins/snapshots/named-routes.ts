/**
 * The named snapshots' API (docs/api.md): list, create, restore and delete, per instance. Any token: a tenant
 * token reaches its own instances only, and another tenant's instance answers 404 as a missing one, exactly as the
 * other instance routes. A snapshot name is strict (named.ts); anything else is `400 TNM_ERR_BAD_NAME`.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { canAccess, requireAccess } from '../../core/api/identity.ts';
import type { AuditNote } from '../../core/api/router.ts';
import { DNS_LABEL } from '../../core/config/schema.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { Identity } from '../../core/types.ts';
import { viewOf, type NamedSnapshots, type SnapshotView } from './manager.ts';
import { instanceSnapshots, listSnapshots } from './named.ts';
import { snapshotsRoot } from './images.ts';

const TAGS = ['snapshots'];
const label = (what: string) => z.string().regex(DNS_LABEL, `expected a DNS label for ${what}`);
const params = z.strictObject({ service: label('the service'), id: label('the instance id') });
/** Checked by the handler, so a bad name is BAD_NAME and not a schema error. */
const named = params.extend({ name: z.string().max(256) });
const createBody = z.strictObject({ name: z.string().max(256).optional() });
const listQuery = z.strictObject({ service: label('the service').optional() });

function note(identity: Identity | null, service: string, id: string, audit: AuditNote, detail?: string): void {
  requireAccess(identity, service, id);
  audit.target = `${service}:${id}`;
  audit.instanceId = id;
  if (detail) audit.detail = detail;
}

export function snapshotRoutes(ctx: PluginContext, snapshots: NamedSnapshots): void {
  ctx.api.route({
    method: 'GET',
    url: '/api/snapshots',
    summary: 'Every named snapshot (a tenant token: of its own instances), oldest first per instance',
    tags: TAGS,
    access: 'token',
    query: listQuery,
    handler: ({ identity, query }) => {
      const out: SnapshotView[] = [];
      const services = query.service === undefined ? ctx.services.names() : ctx.services.get(query.service) ? [query.service] : [];
      for (const service of services) {
        let ids: string[];
        try {
          ids = readdirSync(path.join(snapshotsRoot(ctx.paths.dataDir), '_named', service));
        } catch {
          continue;
        }
        for (const id of ids) {
          if (!DNS_LABEL.test(id) || !canAccess(identity, id) || !ctx.instances.get(service, id)) continue;
          for (const meta of listSnapshots(instanceSnapshots(ctx.paths.dataDir, service, id))) out.push(viewOf(meta));
        }
      }
      return { snapshots: out };
    },
  });

  ctx.api.route({
    method: 'GET',
    url: '/api/instances/:service/:id/snapshots',
    summary: "An instance's named snapshots, oldest first",
    tags: TAGS,
    access: 'token',
    params,
    handler: ({ identity, params: { service, id } }) => {
      requireAccess(identity, service, id);
      return { snapshots: snapshots.list(service, id) };
    },
  });

  ctx.api.route({
    method: 'POST',
    url: '/api/instances/:service/:id/snapshots',
    summary: "Take a named snapshot of a running instance: its process (CRIU) and its DATA_DIR, of one instant; it runs on",
    description:
      'The process is frozen while its image is written and DATA_DIR copied, then resumed. `name` defaults to the time. ' +
      "Retention (`snapshots.keep`, `snapshots.maxBytes` of the service) deletes the oldest; a snapshot larger than maxBytes alone is 507 TNM_ERR_SNAPSHOT_BUDGET. " +
      'Only the process tier (else 409); a name taken is 409.',
    tags: TAGS,
    access: 'token',
    params,
    body: createBody,
    handler: async ({ identity, params: { service, id }, body, reply, audit }) => {
      note(identity, service, id, audit);
      const view = await snapshots.create(service, id, body.name);
      audit.detail = `snapshot '${view.name}' (${view.bytes} bytes)`;
      reply.code(201);
      return view;
    },
  });

  ctx.api.route({
    method: 'POST',
    url: '/api/instances/:service/:id/snapshots/:name/restore',
    summary: 'Restore a named snapshot: the running copy stops, DATA_DIR is put back, the process restored (or started cold on it)',
    description:
      'Requests that arrive meanwhile wait for the restored instance. `restored` is false when the image could not be restored ' +
      '(`reason` says why): the instance then started cold on the restored DATA_DIR.',
    tags: TAGS,
    access: 'token',
    params: named,
    handler: async ({ identity, params: { service, id, name }, audit }) => {
      note(identity, service, id, audit, `restore '${name.slice(0, 80)}'`);
      return snapshots.restore(service, id, name);
    },
  });

  ctx.api.route({
    method: 'DELETE',
    url: '/api/instances/:service/:id/snapshots/:name',
    summary: 'Delete a named snapshot',
    tags: TAGS,
    access: 'token',
    params: named,
    handler: async ({ identity, params: { service, id, name }, audit }) => {
      note(identity, service, id, audit, `delete '${name.slice(0, 80)}'`);
      return snapshots.delete(service, id, name);
    },
  });
}
