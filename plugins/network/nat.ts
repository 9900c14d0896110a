import { readFile, writeFile } from 'node:fs/promises';
import type { Logger } from '../../core/logger.ts';
import { run } from './commands.ts';
import { deleteTableScript, natRuleset } from './nat-rules.ts';

const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';

export interface HostNatOptions {
  nft: string;
  table: string;
  range: string;
  vethPrefix: string;
  /** Off-host egress entries of every private service (the forward chain lets tenants reach only these). */
  allowed: readonly string[];
}

/**
 * Outbound NAT for private instances (`settings.network.nat`): this server's `ip tenement-nat-<scope>` table,
 * loaded on first need, and IPv4 forwarding. The table goes at close; forwarding is a host-wide switch that
 * other programs may rely on by then, so it is left on (and logged when Tenement turned it on).
 */
export class HostNat {
  private loading: Promise<void> | null = null;
  private closed = false;

  constructor(
    private readonly options: HostNatOptions,
    private readonly log: Logger,
  ) {}

  /** Loads the table and turns forwarding on, once; a failure is thrown to each caller and retried by the next. */
  ensure(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the server is shutting down'));
    this.loading ??= this.load().catch((error: unknown) => {
      this.loading = null;
      throw error;
    });
    return this.loading;
  }

  /** Removes the table if this run loaded it (or was loading it). */
  async close(): Promise<void> {
    this.closed = true;
    const loading = this.loading;
    if (!loading) return;
    this.loading = null;
    await loading.catch(() => undefined);
    await removeNatTable(this.options.nft, this.options.table).catch((error: unknown) => {
      this.log.warn({ table: this.options.table, err: (error as Error).message }, `could not remove nft table ip ${this.options.table}`);
    });
  }

  private async load(): Promise<void> {
    // The rules first: forwarding is never on for tenants without the forward chain's limits.
    await run(this.options.nft, ['-f', '-'], natRuleset(this.options));
    const before = (await readFile(IP_FORWARD, 'utf8')).trim();
    if (before !== '1') {
      await writeFile(IP_FORWARD, '1\n');
      this.log.warn(
        { table: this.options.table, allowed: this.options.allowed },
        'settings.network.nat turned on IPv4 forwarding for the whole host (net.ipv4.ip_forward=1); it stays on after shutdown',
      );
    }
    this.log.info({ table: this.options.table, range: this.options.range, allowed: this.options.allowed }, 'outbound NAT for private instances is on');
  }
}

/** Deletes `ip <table>` if it exists; a table of a crashed run of this data directory goes this way at start. */
export async function removeNatTable(nft: string, table: string): Promise<void> {
  await run(nft, ['-f', '-'], deleteTableScript(table));
}
