// Module hooks for a checkout (bin/ten.mjs registers them): `tenement/*` resolves with the `tenement-source`
// export condition, to the TypeScript sources, which tsx runs. The installed package never loads this file.
// Synchronous, so the same hook serves module.registerHooks (Node 22.15+, in-thread) and module.register (Node 20).
export function resolve(specifier, context, nextResolve) {
  if (specifier === 'tenement' || specifier.startsWith('tenement/')) {
    return nextResolve(specifier, { ...context, conditions: [...context.conditions, 'tenement-source'] });
  }
  return nextResolve(specifier, context);
}
