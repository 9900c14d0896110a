import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';

export interface PendingDeletion {
  service: string;
  id: string;
  removedAt: number;
  /** When gc may delete the data (removedAt + the service's keepData retention). */
  deleteAt: number;
}

/**
 * Removed instances whose data is deleted later (`keepData: '7d'`), kept in a small JSON file so a restart of
 * Tenement does not forget a pending deletion. One entry per instance; re-creating the instance drops it.
 */
export class RetentionLedger {
  private readonly entries = new Map<string, PendingDeletion>();
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly file: string) {
    try {
      const parsed = JSON.parse(readFileSync(file, 'utf8')) as { pending?: PendingDeletion[] };
      for (const entry of parsed.pending ?? []) this.entries.set(`${entry.service}:${entry.id}`, entry);
    } catch {
      // No file yet (or an unreadable one, which the next write replaces).
    }
  }

  list(): PendingDeletion[] {
    return [...this.entries.values()];
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  add(entry: PendingDeletion): Promise<void> {
    this.entries.set(`${entry.service}:${entry.id}`, entry);
    return this.save();
  }

  drop(key: string): Promise<void> {
    if (!this.entries.delete(key)) return Promise.resolve();
    return this.save();
  }

  /** Written to a temporary file and renamed over the old one, one write at a time: never half a file. */
  private save(): Promise<void> {
    const text = `${JSON.stringify({ pending: this.list() }, null, 2)}\n`;
    this.writing = this.writing.catch(() => undefined).then(async () => {
      await writeFile(`${this.file}.tmp`, text, { mode: 0o600 });
      await rename(`${this.file}.tmp`, this.file);
    });
    return this.writing;
  }
}
