// Prints the gzipped size of what a first load fetches (index.html and every emitted asset), the figure the
// dashboard keeps under 300 KB.
import { gzipSync } from 'node:zlib';
import type { Plugin } from 'vite';

export const FIRST_LOAD_BUDGET_BYTES = 300 * 1024;

export function reportSizes(): Plugin {
  return {
    name: 'tenement-dashboard-sizes',
    apply: 'build',
    writeBundle(_options, bundle) {
      let raw = 0;
      let gzipped = 0;
      const lines: string[] = [];
      for (const file of Object.values(bundle)) {
        const bytes = file.type === 'chunk' ? Buffer.from(file.code) : Buffer.from(file.source);
        const gz = gzipSync(bytes, { level: 9 }).length;
        raw += bytes.length;
        gzipped += gz;
        lines.push(`  ${file.fileName}: ${(bytes.length / 1024).toFixed(1)} KB, ${(gz / 1024).toFixed(1)} KB gzipped`);
      }
      const verdict = gzipped < FIRST_LOAD_BUDGET_BYTES ? 'under' : 'OVER';
      console.log(
        `dashboard: first load ${(gzipped / 1024).toFixed(1)} KB gzipped (${(raw / 1024).toFixed(1)} KB raw), ${verdict} the 300 KB budget\n${lines.join('\n')}`,
      );
    },
  };
}
