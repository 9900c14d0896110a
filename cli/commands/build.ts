/** `ten build`: a TypeScript (or JavaScript) handler -> a WebAssembly component for `isolation: 'wasm'`. */
import path from 'node:path';
import type { Command } from 'commander';
import { examples } from './common.ts';
import { out } from '../output.ts';

interface BuildFlags {
  out?: string;
  wit?: string;
  world?: string;
}

export function registerBuild(program: Command): void {
  const command = program
    .command('build')
    .description("Build a TypeScript/JavaScript handler into a WebAssembly component for isolation: 'wasm' (needs @bytecodealliance/jco)")
    .argument('<source>', 'the handler module (.ts or .js) exporting handle(req) (see docs/wasm.md)')
    .option('-o, --out <file>', 'the component to write (default: <source> with .wasm)')
    .option('--wit <path>', "WIT file or directory (default: Tenement's HTTP handler world, sdk/wit/handler.wit)")
    .option('--world <name>', 'world in --wit to target (default: handler)')
    .action(async (source: string, flags: BuildFlags) => {
      // Loaded on use: the build pulls in nothing the other commands need.
      const { buildComponent } = await import('../../core/wasm/component/build.ts');
      const target = flags.out ?? path.join(path.dirname(source), `${path.basename(source, path.extname(source))}.wasm`);
      const result = await buildComponent({
        source,
        out: target,
        ...(flags.wit ? { wit: flags.wit } : {}),
        ...(flags.world ? { world: flags.world } : {}),
      });
      out(`built ${path.relative(process.cwd(), result.out) || result.out} (${(result.bytes / 1_048_576).toFixed(1)} MB) in ${(result.ms / 1000).toFixed(1)} s`);
    });
  examples(command, [
    ['ten build hello.ts', 'writes hello.wasm next to it'],
    ['ten build src/fn.ts -o dist/fn.wasm'],
    ['ten build plugin.ts --wit plugin.wit --world auth-plugin', 'another WIT world'],
  ]);
}
