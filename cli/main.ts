import { Command } from 'commander';
import { loadConfig } from '../core/config/loader.ts';
import { isTenementError, errorMessage } from '../core/errors.ts';
import { KERNEL_VERSION } from '../core/plugin.ts';
import { serve } from './serve.ts';

const program = new Command()
  .name('ten')
  .description('Tenement: one server, many tenants. Runs one copy of your app per customer behind subdomain routing.')
  .version(KERNEL_VERSION)
  .showHelpAfterError();

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
  .action(serve);

program
  .command('config')
  .description('Print the resolved config, or every error in it')
  .option('-c, --config <file>', 'config file')
  .action(async (options: { config?: string }) => {
    const config = await loadConfig({ file: options.config });
    process.stdout.write(`${JSON.stringify({ ...config, plugins: config.plugins.length }, null, 2)}\n`);
  });

program.parseAsync().catch((error: unknown) => {
  const code = isTenementError(error) ? `${error.code}: ` : '';
  process.stderr.write(`ten: ${code}${errorMessage(error)}\n`);
  process.exit(1);
});
