import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../../core/logger.ts';
import type { TokenStore } from './tokens.ts';

export const ADMIN_TOKEN_FILE = 'admin.token';

/** The token in the file, or null when there is no file (any other read error is the operator's to fix). */
function readToken(file: string): string | null {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/**
 * Writes the secret so that no one ever sees a partial file or a moment with looser permissions: the temporary
 * file is created exclusively with mode 0600 (umask can only narrow it), synced, then renamed over the target.
 */
function writeSecretFile(file: string, content: string): void {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fd = openSync(temp, 'wx', 0o600);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(temp, file);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
}

/**
 * Makes sure `{dataDir}/admin.token` holds a live admin token, so the operator (and `ten` on this machine)
 * can always reach the API. A file whose token still works is left alone, so restarts keep the same token.
 * A missing file, or one whose token was revoked or has expired, gets a new token named 'admin'.
 */
export function ensureAdminToken(tokens: TokenStore, dataDir: string, log: Logger): { file: string; created: boolean } {
  const file = path.join(dataDir, ADMIN_TOKEN_FILE);
  const existing = readToken(file);
  const current = existing ? tokens.find(existing) : undefined;
  if (current?.kind === 'admin') return { file, created: false };

  const why = existing === null ? 'no admin token file' : 'the token in the admin token file is revoked, expired or unknown';
  if (existing === null && tokens.hasActiveAdmin()) {
    // Whoever can delete files in the data dir owns the server anyway; a new token is better than a lock-out.
    log.warn({ file }, 'admin token file was missing: writing a new one; earlier admin tokens stay valid until revoked');
  }
  const created = tokens.create({ name: 'admin', tenant: null, expiresInMs: null });
  try {
    writeSecretFile(file, `${created.token}\n`);
  } catch (error) {
    // A token nobody holds is only a liability.
    tokens.revoke(created.id);
    throw error;
  }
  log.info({ file, id: created.id, reason: why }, 'admin token written');
  process.stderr.write(`admin token written to ${file}\n`);
  return { file, created: true };
}
