import { z } from 'zod';
import { KERNEL_VERSION } from '../plugin.ts';
import type { ApiRoute } from './router.ts';

type JsonSchema = Record<string, unknown>;

function jsonSchema(schema: z.ZodType): JsonSchema {
  const out = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  delete out.$schema;
  return out;
}

function parameters(schema: z.ZodType | undefined, location: 'path' | 'query'): JsonSchema[] {
  if (!schema) return [];
  const object = jsonSchema(schema) as { properties?: Record<string, JsonSchema>; required?: string[] };
  return Object.entries(object.properties ?? {}).map(([name, property]) => ({
    name,
    in: location,
    required: location === 'path' || (object.required ?? []).includes(name),
    schema: property,
    ...(typeof property.description === 'string' ? { description: property.description } : {}),
  }));
}

/** An OpenAPI 3.1 document built from the routes plugins registered, so it never drifts from the code. */
export function openApiDocument(routes: readonly ApiRoute[]): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const route of routes) {
    const path = route.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const operation: JsonSchema = {
      summary: route.summary,
      tags: route.tags ?? [],
      parameters: [...parameters(route.params, 'path'), ...parameters(route.query, 'query')],
      responses: {
        default: {
          description: 'JSON; errors are { "error": { "code": "TNM_ERR_...", "message": "..." } }',
        },
      },
    };
    if (route.description) operation.description = route.description;
    if (route.body) operation.requestBody = { required: true, content: { 'application/json': { schema: jsonSchema(route.body) } } };
    if (route.access === 'public') operation.security = [];
    else if (route.access === 'admin') operation['x-tenement-access'] = 'admin';
    (paths[path] ??= {})[route.method.toLowerCase()] = operation;
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Tenement management API', version: KERNEL_VERSION },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'tnm_... token' } } },
    security: [{ bearer: [] }],
    paths,
  };
}
