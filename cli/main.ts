/**
 * `ten`: the command line. Each command lives in cli/commands/; this file wires them and reports failures.
 * Only the module of the command that runs is loaded: cli/command-table.ts names each command's module (a new
 * command is a row there, not an import here), and `ten --help` lists that table without loading any command
 * module. A command module imports only cheap modules at its top; what an action needs beyond that (the config
 * loader and zod, the kernel, runtimes) it imports inside the action with `await import(...)`. The quickest calls
 * (`ten --help`, `ten --version`, a plain `ten ps`) do not load commander at all: cli/quick.ts runs them. bench/cli.ts
 * measures it; test/e2e/cli-startup.test.ts guards it.
 */
import { COMMANDS } from './command-table.ts';
import { DESCRIPTION, OVERVIEW_AFTER, runQuick } from './quick.ts';
import { versionLine } from './version.ts';

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

/** How any command's failure ends. */
async function report(error: unknown): Promise<never> {
  // Loaded on failure only (a command that throws these has loaded both already).
  const [{ CliError }, { isTenementError, errorMessage }] = await Promise.all([import('./client.ts'), import('../core/errors.ts')]);
  if (error instanceof CliError) fail(error.message, error.code);
  if (isTenementError(error)) fail(errorMessage(error), error.code);
  fail(errorMessage(error));
}

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

// `ten serve` starts with V8's optimizing compilers held back (cli/startup-tiering.ts); it releases them once listening.
if (commandName(process.argv.slice(2)) === 'serve') (await import('./startup-tiering.ts')).holdOptimizers();

// `ten --help`, `ten --version` and a plain `ten ps` run without commander (cli/quick.ts); the rest parse with it.
if (!(await runQuick(process.argv.slice(2)).catch(report))) await runCommander();

async function runCommander(): Promise<void> {
  const { Command, Help } = await import('commander');
  const program = new Command()
    .name('ten')
    .description(DESCRIPTION)
    .version(versionLine())
    // Usage errors (unknown option, missing argument) in the same one-line form as every other failure.
    .configureOutput({
      outputError: (text, write) => write(`ten: ${text.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ').trim()}\n`),
    });

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
    program.addHelpText('after', OVERVIEW_AFTER);
  }

  await program.parseAsync().catch(report);
}
