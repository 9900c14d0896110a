/**
 * `ten`: the command line. Each command lives in cli/commands/; this file wires them and reports failures.
 * Every command module is loaded for any `ten` call (for --help and parsing), so it imports only cheap modules at
 * its top; what an action needs beyond that (the config loader and zod, the kernel, runtimes) it imports inside the
 * action with `await import(...)`. bench/cli.ts measures it; test/e2e/cli-startup.test.ts guards it.
 */
import { Command } from 'commander';
import { isTenementError, errorMessage } from '../core/errors.ts';
import { KERNEL_VERSION } from '../core/version.ts';
import { CliError } from './client.ts';
import { registerAudit } from './commands/audit.ts';
import { examples } from './commands/common.ts';
import { registerBuild } from './commands/build.ts';
import { registerConfig } from './commands/config.ts';
import { registerDeploy } from './commands/deploy.ts';
import { registerDoctor } from './commands/doctor.ts';
import { registerGc } from './commands/gc.ts';
import { registerInit } from './commands/init.ts';
import { registerInstanceCommands } from './commands/instances.ts';
import { registerLogs } from './commands/logs.ts';
import { registerMicrovm } from './commands/microvm.ts';
import { registerPlugin } from './commands/plugin.ts';
import { registerPs } from './commands/ps.ts';
import { registerToken } from './commands/token.ts';
import type { ServeOptions } from './serve.ts';

/** Every failure ends as one line on stderr, `ten: [TNM_ERR_CODE: ]message`, and exit code 1. */
function fail(message: string, code: string | null = null): never {
  process.stderr.write(`ten: ${code ? `${code}: ` : ''}${message}\n`);
  process.exit(1);
}

// `ten logs -f | head`: a reader that went away is a normal end, not a crash.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

const program = new Command()
  .name('ten')
  .description('Tenement: one server, many tenants. Runs one copy of your app per customer behind subdomain routing.')
  .version(KERNEL_VERSION)
  // Usage errors (unknown option, missing argument) in the same one-line form as every other failure.
  .configureOutput({
    outputError: (text, write) => write(`ten: ${text.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ').trim()}\n`),
  });

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
  // Loaded on use: the kernel, the HTTP server and every plugin are a lot to import for a quick `ten ps`.
  .action(async (options: ServeOptions) => (await import('./serve.ts')).serve(options));

registerInit(program);
registerConfig(program);
registerPs(program);
registerInstanceCommands(program);
registerLogs(program);
registerDeploy(program);
registerBuild(program);
registerToken(program);
registerAudit(program);
registerDoctor(program);
registerMicrovm(program);
registerPlugin(program);
registerGc(program);

examples(program, [
  ['ten init', 'write ./tenement.config.ts for the app here'],
  ['ten serve', 'run it'],
  ['ten spawn notes:alice', "start alice's copy"],
  ['ten ps', 'what runs, with health and memory'],
  ['ten logs notes:alice -f', 'follow her output'],
  ['ten deploy notes:v2 && ten route notes --from v1 --to v2'],
  ['ten doctor', 'what this host supports'],
]);
program.addHelpText(
  'after',
  `
Client commands find the server and token by themselves next to a local config (its port, and
{dataDir}/admin.token); elsewhere pass --server <url> and --token <token> (or TENEMENT_SERVER, TENEMENT_TOKEN).
Run 'ten <command> --help' for a command's options and examples.`,
);

program.parseAsync().catch((error: unknown) => {
  if (error instanceof CliError) fail(error.message, error.code);
  if (isTenementError(error)) fail(errorMessage(error), error.code);
  fail(errorMessage(error));
});
