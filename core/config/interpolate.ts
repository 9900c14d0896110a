/**
 * `{name}` placeholders in command, args and env. The set of names is closed so a typo in the config is caught
 * at load time instead of reaching the tenant's process as a literal `{prot}`.
 */
export const PLACEHOLDERS = ['service', 'id', 'port', 'instance_dir', 'data_dir'] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];
export type PlaceholderValues = Record<Placeholder, string>;

const PLACEHOLDER_PATTERN = /\{([a-zA-Z_][a-zA-Z0-9_]*)\}/g;
const KNOWN = new Set<string>(PLACEHOLDERS);

/** Names used in `text` that are not known placeholders. */
export function unknownPlaceholders(text: string): string[] {
  const unknown: string[] = [];
  for (const match of text.matchAll(PLACEHOLDER_PATTERN)) {
    if (!KNOWN.has(match[1]!)) unknown.push(match[1]!);
  }
  return unknown;
}

export function interpolate(text: string, values: PlaceholderValues): string {
  return text.replace(PLACEHOLDER_PATTERN, (whole, name: string) =>
    KNOWN.has(name) ? values[name as Placeholder] : whole,
  );
}
