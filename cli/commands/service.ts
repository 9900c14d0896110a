/**
 * `ten service install`: a systemd unit that runs `ten serve` for one config as a system service, with its data
 * in a state directory of its own, reloads on `systemctl reload` (SIGHUP) and lets Tenement drain its tenants
 * itself on stop. docs/operations.md explains each line.
 */
import { existsSync, realpathSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { ErrorCodes } from '../../core/errors.ts';
import { CliError } from '../client.ts';
import { color, out } from '../output.ts';
import { examples } from './common.ts';

interface InstallFlags {
  config?: string;
  dataDir: string;
  output: string;
  print?: boolean;
  force?: boolean;
}

export interface UnitOptions {
  node: string;
  ten: string;
  config: string;
  dataDir: string;
  /** Longest drain + stop of any service, in milliseconds: systemd must wait longer than Tenement's own stop. */
  stopMs: number;
}

const DEFAULT_DATA_DIR = '/var/lib/tenement';
const DEFAULT_OUTPUT = '/etc/systemd/system/tenement.service';
/** Past the longest drain + stop: the time to stop the store and plugins, and to SIGKILL what is left. */
const STOP_MARGIN_S = 30;

/** One word of a unit's command line: quoted when needed, `%` and `$` escaped (systemd expands both). */
function unitWord(word: string): string {
  // A newline would end the directive; any control byte has no business in a path.
  if (/[\u0000-\u001f\u007f]/.test(word)) throw new CliError(`'${JSON.stringify(word)}' holds a control character: it cannot go in a unit file`, ErrorCodes.BAD_REQUEST);
  const escaped = word.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /[\s"'\\;]/.test(word) ? `"${escaped}"` : escaped;
}

/** A path in a directive that is not a command line (WorkingDirectory=): only `%` is expanded there. */
function unitPath(value: string): string {
  unitWord(value);
  return value.replace(/%/g, '%%');
}

export function renderUnit(options: UnitOptions): string {
  const stateDirectory = path.dirname(options.dataDir) === '/var/lib' ? path.basename(options.dataDir) : null;
  const exec = [options.node, options.ten, 'serve', '--config', options.config, '--data-dir', options.dataDir].map(unitWord).join(' ');
  const stopSeconds = Math.ceil(options.stopMs / 1000) + STOP_MARGIN_S;
  return `# Written by \`ten service install\`. Reload the config: systemctl reload tenement (SIGHUP).
[Unit]
Description=Tenement: one server, many tenants (${path.basename(options.config)})
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart=${exec}
ExecReload=/bin/kill -HUP $MAINPID
WorkingDirectory=${unitPath(path.dirname(options.config))}
${stateDirectory ? `# ${options.dataDir}, created 0700 and kept across restarts and upgrades.\nStateDirectory=${stateDirectory}\nStateDirectoryMode=0700\n` : ''}Environment=TENEMENT_LOG_LEVEL=info
Restart=on-failure
RestartSec=2s
# One descriptor per client connection, per upstream connection and per tenant's pipes: far above the default 1024.
LimitNOFILE=1048576
# SIGTERM to ten serve alone: it drains in-flight requests and stops every tenant itself (drainTimeout, then
# stopTimeout); whatever is left after TimeoutStopSec is SIGKILLed.
KillMode=mixed
KillSignal=SIGTERM
# The longest drainTimeout + stopTimeout of the config's services (${Math.ceil(options.stopMs / 1000)}s), plus ${STOP_MARGIN_S}s.
TimeoutStopSec=${stopSeconds}s

[Install]
WantedBy=multi-user.target
`;
}

/** The `ten` script being run, as an absolute path with links resolved (a global install's bin is a link). */
function tenScript(): string {
  const script = process.argv[1];
  if (!script) throw new CliError('cannot tell where the ten script is (process.argv[1] is empty)');
  return realpathSync(script);
}

export function registerService(program: Command): void {
  const service = program.command('service').description('Run ten serve as a system service (systemd)');
  const install = service
    .command('install')
    .description('Write a systemd unit running ten serve for a config, then print how to enable it')
    .option('-c, --config <file>', 'config to serve (default: $TENEMENT_CONFIG, else tenement.config.* found from the cwd up)')
    .option('--data-dir <dir>', `the server's data dir (a StateDirectory= when under /var/lib)`, DEFAULT_DATA_DIR)
    .option('-o, --output <file>', 'where to write the unit', DEFAULT_OUTPUT)
    .option('--print', 'print the unit on stdout instead of writing it')
    .option('--force', 'overwrite an existing unit file')
    .action(async (flags: InstallFlags) => {
      // Loaded on use: the loader brings zod, and the config gives the stop timeout.
      const { loadConfig } = await import('../../core/config/loader.ts');
      const config = await loadConfig({ file: flags.config, overrides: { dataDir: path.resolve(flags.dataDir) } });
      const stopMs = Math.max(0, ...Object.values(config.services).map((s) => s.drainTimeout + s.stopTimeout));
      const unit = renderUnit({ node: process.execPath, ten: tenScript(), config: config.source.path!, dataDir: path.resolve(flags.dataDir), stopMs });
      if (flags.print) {
        process.stdout.write(unit);
        return;
      }
      const output = path.resolve(flags.output);
      if (existsSync(output) && !flags.force) throw new CliError(`${output} already exists; pass --force to replace it, or --print to see the new unit`, ErrorCodes.CONFLICT);
      try {
        writeFileSync(output, unit, { mode: 0o644 });
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        const hint = code === 'EACCES' || code === 'EPERM' ? ' (run as root, or pass --output <file> or --print)' : '';
        throw new CliError(`cannot write ${output}: ${(error as Error).message}${hint}`);
      }
      const name = path.basename(output, '.service');
      out(`wrote ${color.bold(output)}: ten serve --config ${config.source.path}, data in ${path.resolve(flags.dataDir)}`);
      out('');
      out('Enable and start it:');
      out(`  ${color.cyan(`systemctl daemon-reload && systemctl enable --now ${name}`)}`);
      out('Then:');
      out(`  systemctl reload ${name}      # re-read the config (SIGHUP): services added, removed, changed`);
      out(`  journalctl -u ${name} -f      # its log`);
      out(`  ten ps                        # from any folder, as root (the current context)`);
    });
  examples(install, [
    ['ten service install --config /srv/notes/tenement.config.ts', 'writes /etc/systemd/system/tenement.service'],
    ['ten service install --print', 'shows the unit without writing it'],
  ]);
}
