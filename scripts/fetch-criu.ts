/**
 * `npm run fetch:criu`: downloads CRIU 4.2.1 and the libraries it needs from Debian sid's pool (sha256-pinned),
 * extracts them into a cache folder and installs a wrapper that runs criu with its own loader
 * (plugins/snapshots/criu.ts). The host's libc is not touched.
 */
import { fetchCriu } from '../plugins/snapshots/criu.ts';

try {
  await fetchCriu((line) => console.log(line));
} catch (error) {
  console.error(`fetch:criu: ${(error as Error).message}`);
  process.exitCode = 1;
}
