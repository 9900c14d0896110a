import path from 'node:path';

/** Plugin options of `runtime-microvm` (pluginOptions['runtime-microvm'] in the config). */
export interface MicrovmOptions {
  /** Where the prepared guest (kernel, initramfs, tools image, app images) lives. Default `{dataDir}/.microvm`. */
  guestDir?: string;
}

/**
 * The guest folder: $TENEMENT_MICROVM_DIR, else the plugin's `guestDir`, else `{dataDir}/.microvm`. The
 * environment variable lets several servers (and test runs) share one prepared guest.
 */
export function guestDirFor(dataDir: string, options: MicrovmOptions | undefined, env = process.env): string {
  const chosen = env.TENEMENT_MICROVM_DIR || options?.guestDir || path.join(dataDir, '.microvm');
  return path.resolve(chosen);
}

export const MANIFEST = 'guest.json';

/** What `ten microvm prepare` wrote: file names relative to the guest folder. */
export interface GuestManifest {
  version: 1;
  kernelPackage: string;
  kernel: string;
  initrd: string;
  tools: string;
  /** Key of the host files in the tools image; a changed node binary makes the guest outdated. */
  toolsKey: string;
  /** Hash of the guest's /init (init-script.ts): a Tenement whose init changed needs the initramfs built again. */
  initKey?: string;
  preparedAt: string;
}

export const PREPARE_COMMAND = 'ten microvm prepare';
