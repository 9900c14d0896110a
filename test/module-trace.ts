/**
 * Which files a `ten` process loads: an `--import` flag registering a load hook that writes each file URL it
 * loads to stderr (the first import of a package, CommonJS ones too), before bin/ten.mjs runs and registers tsx.
 */
export const MODULE_MARK = 'TEN_MODULE_LOADED ';

const HOOK = `import { writeSync } from 'node:fs';
export async function load(url, context, next) {
  if (url.startsWith('file:')) writeSync(2, ${JSON.stringify(MODULE_MARK)} + url + '\\n');
  return next(url, context);
}`;
const REGISTER = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(HOOK)}`)});`;

/** Node's arguments that install the hook: put them before the script. */
export const TRACE_MODULES_ARGS: readonly string[] = ['--import', `data:text/javascript,${encodeURIComponent(REGISTER)}`];

/** The marked lines of a traced process's stderr. */
export const loadedModuleLines = (stderr: string): string[] => stderr.split('\n').filter((line) => line.startsWith(MODULE_MARK));
