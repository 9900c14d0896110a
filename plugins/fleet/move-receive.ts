/**
 * The target's side of a move (docs/fleet-move.md): pulls the archive the source announced (signed), checks and
 * unpacks it beside the instance's data, holds the instance's requests and wakes until the commit, then puts the
 * data in place, hands the images to the restore and starts the instance.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, TenementError, errorFields } from '../../core/errors.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { Packed } from './archive.ts';
import { instanceKey } from './keys.ts';
import type { MoveHolds } from './move-hold.ts';
import { ACTIVE, CALL_MS } from './move-result.ts';
import { pullArchive } from './move-pull.ts';
import type { Peer } from './peer.ts';
import type { Placement } from './records.ts';
import type { FleetState } from './state.ts';
import { copyIntoImage, storageMount } from './storage-data.ts';

/** A received archive whose commit never came (its source died mid-move) is deleted after this long. */
const INCOMING_MS = 10 * 60_000;

interface Incoming {
  from: string;
  staging: string;
  images: boolean;
  at: number;
  /** Lets the requests and wakes held here go on. */
  release: () => void;
}

export interface MoveReceiverOptions {
  self: string;
  state: FleetState;
  maxBytes: number;
  holds: MoveHolds;
  /** Where archives are unpacked (root-only). */
  root: string;
  peer(node: string): Peer;
}

export class MoveReceiver {
  private readonly incoming = new Map<string, Incoming>();

  constructor(
    private readonly ctx: PluginContext,
    private readonly options: MoveReceiverOptions,
  ) {}

  /** The target's side: pulls the announced archive, checks it, unpacks it beside the instance's data. */
  async receive(from: string, body: { service: string; id: string; token: string; images: boolean }): Promise<Packed> {
    const { service, id } = body;
    if (!this.ctx.services.get(service)) throw new TenementError(ErrorCodes.NOT_FOUND, `unknown service '${service}'`);
    checkId(id);
    const key = instanceKey(service, id);
    this.drop(key);
    for (const [other, entry] of this.incoming) if (Date.now() - entry.at > INCOMING_MS) this.drop(other);
    if (this.options.holds.gates.has(key)) throw new TenementError(ErrorCodes.CONFLICT, `${service}:${id} is being moved by this node`);
    // Held here too until the commit: this node may see the new placement (its watch) before the data is in place,
    // and a request must not start the instance on an empty DATA_DIR meanwhile.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    this.options.holds.gates.set(key, gate);
    const open = (): void => {
      if (this.options.holds.gates.get(key) === gate) this.options.holds.gates.delete(key);
      release();
    };
    const staging = mkdtempSync(path.join(this.options.root, 'in-'));
    try {
      const received = await pullArchive(this.options.peer(from), `/api/fleet/internal/archive/${body.token}`, path.join(staging, 'x'), ['data', 'images'], this.options.maxBytes, CALL_MS);
      this.incoming.set(key, { from, staging, images: body.images, at: Date.now(), release: open });
      return received;
    } catch (error) {
      open();
      rmSync(staging, { recursive: true, force: true });
      throw error;
    }
  }

  /** The target's side, after the switch: the data in place, the images to the restore, the instance started. */
  async commit(from: string, body: { service: string; id: string; placement: unknown; start: boolean }): Promise<{ restored: boolean }> {
    const { service, id } = body;
    const key = instanceKey(service, id);
    const entry = this.incoming.get(key);
    if (!entry || entry.from !== from) throw new TenementError(ErrorCodes.CONFLICT, `no move of ${service}:${id} from ${from} was received here`);
    this.incoming.delete(key);
    try {
      const extracted = path.join(entry.staging, 'x');
      const dataDir = this.ctx.paths.instanceDir(service, id);
      // What this node ran for the instance (a stand-in forwarding to the old node) goes first.
      const local = this.ctx.instances.get(service, id);
      if (local && ACTIVE.has(local.state)) await this.ctx.lifecycle.hibernate(local, `fleet: moved here from ${from}`);
      const data = path.join(extracted, 'data');
      if (!existsSync(data)) mkdirSync(data, { mode: 0o700 });
      // limits.storage, image mounted here: the data goes inside it (within its quota). If it does not fit after
      // all, it is kept as a plain DATA_DIR, which the storage plugin moves into the image at the start (or
      // refuses to start, saying why): the data is never dropped.
      const image = storageMount(dataDir);
      const intoImage = image !== null && (await copyIntoImage(data, image).then(
        () => true,
        (error: unknown) => {
          this.ctx.log.warn({ instance: `${service}:${id}`, ...errorFields(error) }, 'fleet move: the data did not go into the storage image here; kept as a plain DATA_DIR');
          return false;
        },
      ));
      if (!intoImage) {
        rmSync(dataDir, { recursive: true, force: true });
        mkdirSync(path.dirname(dataDir), { recursive: true });
        renameSync(data, dataDir);
      }
      let pid: number | null = null;
      let handed = false;
      const images = path.join(extracted, 'images');
      if (entry.images && existsSync(images)) {
        pid = imagePid(images);
        handed = await this.ctx.migration.restore({ service, id, dir: images });
      }
      const placement = parsePlacementBody(body.placement, service, id, this.options.self);
      this.options.state.applyPlacement(placement);
      // Data and images in place, placed here: requests and wakes may go on (the start below and a wake share one spawn).
      entry.release();
      const instance = this.ctx.instances.get(service, id) ?? this.ctx.lifecycle.create(service, id);
      // It ran there: it runs here (restored, or started cold). Otherwise its next request wakes it.
      if (body.start) await this.ctx.lifecycle.start(instance, `fleet: moved here from ${from}`);
      return { restored: handed && pid !== null && instance.handle?.pid === pid };
    } finally {
      entry.release();
      // Off the commit's answer, which the pause waits for (the folder is this move's own, made by mkdtemp).
      rm(entry.staging, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  abort(from: string, service: string, id: string): void {
    const entry = this.incoming.get(instanceKey(service, id));
    if (entry && entry.from === from) this.drop(instanceKey(service, id));
  }

  private drop(key: string): void {
    const entry = this.incoming.get(key);
    if (!entry) return;
    this.incoming.delete(key);
    entry.release();
    rmSync(entry.staging, { recursive: true, force: true });
  }
}

export function checkId(id: string): void {
  if (id === '.' || id === '..' || id.includes('/') || id.includes('\0')) throw new TenementError(ErrorCodes.BAD_REQUEST, `not an instance id: ${JSON.stringify(id)}`);
}

function imagePid(images: string): number | null {
  try {
    const meta = JSON.parse(readFileSync(path.join(images, 'final', 'meta.json'), 'utf8')) as { pid?: unknown };
    return typeof meta.pid === 'number' ? meta.pid : null;
  } catch {
    return null;
  }
}

function parsePlacementBody(value: unknown, service: string, id: string, self: string): Placement {
  const placement = value as Partial<Placement> | null;
  if (
    !placement ||
    placement.service !== service ||
    placement.id !== id ||
    placement.node !== self ||
    typeof placement.revision !== 'number' ||
    typeof placement.generation !== 'number' ||
    typeof placement.at !== 'number'
  ) {
    throw new TenementError(ErrorCodes.BAD_REQUEST, 'the commit names another placement');
  }
  return { node: placement.node, at: placement.at, generation: placement.generation, service, id, revision: placement.revision, ...(typeof placement.by === 'string' ? { by: placement.by } : {}), ...(typeof placement.nonce === 'string' ? { nonce: placement.nonce } : {}) };
}
