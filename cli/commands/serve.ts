/** `ten serve`: run the server. The kernel, the HTTP server and every plugin load only when it runs (cli/serve.ts). */
import { setFlagsFromString } from 'node:v8';
import type { Command } from 'commander';
import type { ServeOptions } from '../serve.ts';

/** V8's own default (`node --v8-options`), restored once the server is up. */
const DEFAULT_SEMI_SPACE_GROWTH = 2;

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('Run the server: start the configured instances and route {id}.{service}.{domain} to them')
    .option('-c, --config <file>', 'config file (default: $TENEMENT_CONFIG, else tenement.config.* found from the cwd up)')
    .option('-p, --port <port>', 'port to listen on (overrides settings.port)')
    .option('-d, --domain <domain>', 'domain tenants live under (overrides settings.domain)')
    .option('--listen <address>', 'address to listen on (overrides settings.listen)')
    .option('--data-dir <dir>', 'state and instance data (overrides settings.dataDir; env TENEMENT_DATA_DIR)')
    .option('--fleet <servers>', 'join a fleet: comma-separated NATS server URLs (sets settings.fleet.servers; docs/fleet.md)')
    .addHelpText(
      'after',
      `
Examples:
  $ ten serve                                  # uses ./tenement.config.ts
  $ ten serve --config examples/notes/tenement.config.ts --port 8080
  $ curl http://alice.notes.localhost:8080/    # reaches the notes:alice instance`,
    )
    .action(runServe);
}

/** The command's action; cli/quick.ts runs it without commander for the plain spellings of these options. */
export async function runServe(options: ServeOptions): Promise<void> {
  // Start-up (loading modules, validating the config, restoring instances) allocates a lot that dies at once.
  // V8 doubles the young generation under such a burst (up to 2 x 16 MB) and keeps it resident after, ~10 MB of
  // an idle server's RSS: it stays at its initial size during start-up, and may grow again after, when traffic
  // asks for it (bench/footprint.ts).
  setFlagsFromString('--semi-space-growth-factor=1');
  try {
    await (await import('../serve.ts')).serve(options);
  } finally {
    setFlagsFromString(`--semi-space-growth-factor=${DEFAULT_SEMI_SPACE_GROWTH}`);
  }
}
