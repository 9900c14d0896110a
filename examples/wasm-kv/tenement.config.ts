import { defineConfig } from '../../sdk/index.ts';

// A per-tenant counter in TypeScript, served as `{tenant}.kv.localhost`: POST /increment, GET /.
// Build it first: `npm run build` here (`ten build counter.ts -o counter.wasm`); see docs/wasm.md.
export default defineConfig({
  settings: { port: 8080, dataDir: './tenement-data' },
  services: {
    kv: {
      isolation: 'wasm',
      module: './counter.wasm',
      limits: { memory: '64MB' },
      idleTimeout: '5m',
      autoCreate: true,
    },
  },
});
