/**
 * `ten`: the command line. Each command lives in cli/commands/; this file wires them and reports failures.
 * Only the module of the command that runs is loaded: cli/command-table.ts names each command's module (a new
 * command is a row there, not an import here), and `ten --help` lists that table without loading any command
 * module. A command module imports only cheap modules at its top; what an action needs beyond that (the config
 * loader and zod, the kernel, runtimes) it imports inside the action with `await import(...)`. bench/cli.ts
 * measures it; test/e2e/cli-startup.test.ts guards it.
 */
import { Command, Help } from 'commander';
import { KERNEL_VERSION } from '../core/version.ts';
import { COMMANDS } from './command-table.ts';

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

const TOP_LEVEL_FLAGS = new Set(['-h', '--help', '-V', '--version']);

const program = new Command()
  .name('ten')
  .description('Tenement: one server, many tenants. Runs one copy of your app per customer behind subdomain routing.')
  .version(KERNEL_VERSION)
  // Usage errors (unknown option, missing argument) in the same one-line form as every other failure.
  .configureOutput({
    outputError: (text, write) => write(`ten: ${text.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ').trim()}\n`),
  });

/**
 * The command a `ten` call names (`ten help <name>` too); undefined for `ten`, `ten --help`, `ten --version` and
 * those flags before a name (`ten --help ps` is the overview, as commander reads it).
 */
function commandName(args: readonly string[]): string | undefined {
  const at = args.findIndex((arg) => !arg.startsWith('-'));
  if (at === -1 || args.slice(0, at).some((arg) => TOP_LEVEL_FLAGS.has(arg))) return undefined;
  const first = args[at];
  if (first !== 'help') return first;
  return args.slice(at + 1).find((arg) => !arg.startsWith('-')) ?? first;
}

const name = commandName(process.argv.slice(2));
const entry = name === undefined ? undefined : COMMANDS.get(name);
if (entry) {
  (await entry.load())(program);
} else {
  // The overview, or an unknown command (answered with the closest names): every command as a stub with its
  // description from the table. A stub never runs: a known name loads its real module above.
  for (const [stub, { description }] of COMMANDS) program.command(stub).description(description);
  const help = new Help();
  program.configureHelp({ subcommandTerm: (command) => COMMANDS.get(command.name())?.term ?? help.subcommandTerm(command) });
  program.addHelpText(
    'after',
    `
Examples:
  $ ten init                                                  # write ./tenement.config.ts for the app here
  $ ten serve                                                 # run it
  $ ten spawn notes:alice                                     # start alice's copy
  $ ten ps                                                    # what runs, with health and memory
  $ ten logs notes:alice -f                                   # follow her output
  $ ten deploy notes:v2 && ten route notes --from v1 --to v2
  $ ten doctor                                                # what this host supports

Client commands find the server and token by themselves next to a local config (its port, and
{dataDir}/admin.token), else from the current context (the server you last started: ten context list);
elsewhere pass --server <url> and --token <token> (or TENEMENT_SERVER, TENEMENT_TOKEN).
Run 'ten <command> --help' for a command's options and examples.`,
  );
}

program.parseAsync().catch(async (error: unknown) => {
  // Loaded on failure only (a command that throws these has loaded both already).
  const [{ CliError }, { isTenementError, errorMessage }] = await Promise.all([import('./client.ts'), import('../core/errors.ts')]);
  if (error instanceof CliError) fail(error.message, error.code);
  if (isTenementError(error)) fail(errorMessage(error), error.code);
  fail(errorMessage(error));
});
