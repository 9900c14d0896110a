import type { InstanceView } from '../../core/instance.ts';
import { ErrorCodes, TenementError, statusOf } from '../../core/errors.ts';
import { healthSettings } from '../../core/config/health.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { ApiContext } from '../../core/api/router.ts';
import { deployBody, type DeployBody } from './schemas.ts';
import { isUp } from './start.ts';
import { lastLogLines, viewOf } from './view.ts';

/** Pause between health checks while a freshly started version is not healthy yet. */
const RECHECK_MS = 100;

type Outcome = { ok: true } | { ok: false; timedOut: boolean; reason: string };

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves true when `work` settles before `ms`, false when the time runs out first. */
async function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, ms));
  });
  try {
    return await Promise.race([work.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Starts the new version and waits for it to be running with a passing health check. The first start must
 * succeed: a version that exits or never gets ready is a failed deploy, not something to retry with backoff.
 */
async function startHealthy(ctx: PluginContext, instance: InstanceView, deadline: number): Promise<Outcome> {
  const started = await within(ctx.lifecycle.start(instance, 'deploy'), deadline - Date.now());
  if (!started) return { ok: false, timedOut: true, reason: `not running within the deploy timeout (it is ${instance.state})` };
  if (!isUp(instance)) return { ok: false, timedOut: false, reason: instance.lastError ?? `it is ${instance.state}` };
  const check = healthSettings(instance.config, ctx.settings);
  let last = 'no health check ran';
  while (Date.now() < deadline && isUp(instance)) {
    const result = await ctx.checkHealth(instance, Math.max(1, Math.min(check.timeoutMs, deadline - Date.now())));
    if (result.ok && isUp(instance)) return { ok: true };
    last = result.detail ?? 'health check failed';
    await sleep(Math.min(RECHECK_MS, Math.max(0, deadline - Date.now())));
  }
  if (!isUp(instance)) return { ok: false, timedOut: false, reason: instance.lastError ?? `it stopped running (${instance.state})` };
  return { ok: false, timedOut: true, reason: `no passing health check within the deploy timeout (last: ${last})` };
}

/** Registers, weighs and starts `{service}:{version}`; a version that does not become healthy is removed again. */
async function deploy(ctx: PluginContext, { body, reply, audit }: ApiContext<unknown, unknown, DeployBody>): Promise<unknown> {
  const { service, version } = body;
  audit.target = `${service}:${version}`;
  audit.instanceId = version;
  const config = ctx.services.get(service);
  if (!config) throw new TenementError(ErrorCodes.UNKNOWN_SERVICE, `unknown service '${service}'`);
  if (ctx.instances.get(service, version)) {
    throw new TenementError(ErrorCodes.CONFLICT, `${service}:${version} already exists; remove it first or deploy another version`, {
    });
  }
  const weight = body.weight ?? (ctx.instances.ofService(service).some(isUp) ? 0 : 100);
  const timeoutMs = body.timeout ?? config.startupTimeout;
  const deadline = Date.now() + timeoutMs;

  // Registered, weighted, then started, all before anything else can run: the router never sees this
  // version with the service's default weight, so a weight-0 deploy never gets a request.
  const instance = ctx.lifecycle.create(service, version);
  ctx.lifecycle.setWeight(instance, weight);
  const outcome = await startHealthy(ctx, instance, deadline);
  if (outcome.ok) {
    audit.detail = `deployed at weight ${weight}`;
    reply.code(201);
    return viewOf(ctx.instances, instance);
  }

  const lastError = instance.lastError;
  const logs = lastLogLines(instance);
  await ctx.lifecycle.remove(instance, 'deploy failed');
  const message = `deploy of ${instance.key} failed: ${outcome.reason}`;
  audit.detail = message;
  const code = outcome.timedOut ? ErrorCodes.DEPLOY_TIMEOUT : ErrorCodes.DEPLOY_FAILED;
  reply.code(statusOf(code));
  return { error: { code, message, lastError, logs } };
}

/** `POST /api/deploy`: a new version of a service, started beside the running ones at a chosen weight. */
export function deployRoute(ctx: PluginContext): void {
  ctx.api.route({
    method: 'POST',
    url: '/api/deploy',
    summary: 'Start a new version of a service as instance {service}:{version} and wait until it is healthy',
    description:
      'weight defaults to 100 when the service has no other running instance, else 0 (a canary that gets no ' +
      "traffic until /api/route or a weight change). timeout defaults to the service's startupTimeout. On failure " +
      'the version is removed and the answer is 502 TNM_ERR_DEPLOY_FAILED (it exited or never became ready) or ' +
      '504 TNM_ERR_DEPLOY_TIMEOUT (timeout passed), with its last error and output.',
    tags: ['deploy'],
    access: 'admin',
    body: deployBody,
    handler: (context) => deploy(ctx, context),
  });
}
