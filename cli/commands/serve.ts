/** `ten serve`: run the server. The kernel, the HTTP server and every plugin load only when it runs (cli/serve.ts). */
import type { Command } from 'commander';
import type { ServeOptions } from '../serve.ts';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('Run the server: start the configured instances and route {id}.{service}.{domain} to them')
    .option('-c, --config <file>', 'config file (default: $TENEMENT_CONFIG, else tenement.config.* found from the cwd up)')
    .option('-p, --port <port>', 'port to listen on (overrides settings.port)')
    .option('-d, --domain <domain>', 'domain tenants live under (overrides settings.domain)')
    .option('--listen <address>', 'address to listen on (overrides settings.listen)')
    .option('--data-dir <dir>', 'state and instance data (overrides settings.dataDir; env TENEMENT_DATA_DIR)')
    .addHelpText(
      'after',
      `
Examples:
  $ ten serve                                  # uses ./tenement.config.ts
  $ ten serve --config examples/notes/tenement.config.ts --port 8080
  $ curl http://alice.notes.localhost:8080/    # reaches the notes:alice instance`,
    )
    .action(async (options: ServeOptions) => (await import('../serve.ts')).serve(options));
}
