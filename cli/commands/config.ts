/** `ten config`: the resolved config as JSON, or every error in it. Local only: no server needed. */
import type { Command } from 'commander';
import { printJson } from '../output.ts';
import { examples } from './common.ts';

export function registerConfig(program: Command): void {
  const command = program
    .command('config')
    .description('Print the resolved config (defaults filled in, paths absolute) as JSON, or every error in it')
    .option('-c, --config <file>', 'config file (default: $TENEMENT_CONFIG, else tenement.config.* found from the cwd up)')
    .option('--json', 'print JSON (the only format; accepted like on every reading command)')
    .action(async (options: { config?: string }) => {
      // Loaded on use, like every command's heavy part: the loader brings zod, which `ten --help` does not need.
      const { loadConfig } = await import('../../core/config/loader.ts');
      const config = await loadConfig({ file: options.config });
      // Plugins are code, not data: their count says enough.
      printJson({ ...config, plugins: config.plugins.length });
    });
  examples(command, [['ten config', 'check ./tenement.config.ts'], ['ten config --config examples/notes/tenement.config.ts']]);
}
