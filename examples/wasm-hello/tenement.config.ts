import { defineConfig } from '../../sdk/index.ts';

// A TypeScript function served as `{tenant}.hello.localhost`. Build it first: `npm run build` here
// (`ten build hello.ts -o hello.wasm`); see docs/wasm.md.
export default defineConfig({
  settings: { port: 8080, dataDir: './tenement-data' },
  services: {
    hello: {
      isolation: 'wasm',
      module: './hello.wasm',
      limits: { memory: '64MB' },
      wasm: { timeout: '5s' },
      idleTimeout: '5m',
      autoCreate: true,
    },
  },
});
