import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';

/** The first executable file called `name` on `searchPath` (a name with a slash is taken as a path), or null. */
export function which(name: string, searchPath = process.env.PATH ?? '', cwd = '/'): string | null {
  const candidates = name.includes('/') ? [path.resolve(cwd, name)] : searchPath.split(':').filter(Boolean).map((dir) => path.join(dir, name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // Not here.
    }
  }
  return null;
}
