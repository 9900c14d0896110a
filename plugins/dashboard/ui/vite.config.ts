// Builds the dashboard into ../dist (served by the dashboard plugin). Run from the repo root:
// `npm run build:dashboard`. The output must work under `Content-Security-Policy: default-src 'self'`, so nothing
// is inlined: no inline scripts (the module preload polyfill is off), no data: URIs for assets.
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import { reportSizes } from './report-sizes.ts';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  base: '/',
  plugins: [svelte(), reportSizes()],
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../dist', import.meta.url)),
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    cssCodeSplit: false,
    sourcemap: false,
    target: 'es2022',
    reportCompressedSize: false,
  },
});
