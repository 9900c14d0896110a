import { defineConfig } from '../../sdk/index.ts';

// A C function served as `{tenant}.hello-c.localhost`. Build it first: ./build.sh (see docs/wasm.md).
export default defineConfig({
  settings: { port: 8080, dataDir: './tenement-data' },
  services: {
    'hello-c': {
      isolation: 'wasm',
      module: './handler.wasm',
      // Its guest memory cap; requests get 10 s each in the pool, and idle tenants hibernate after 5 minutes.
      limits: { memory: '32MB' },
      wasm: { timeout: '10s' },
      idleTimeout: '5m',
      autoCreate: true,
    },
  },
});
