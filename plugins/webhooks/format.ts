/**
 * What a webhook receives: the generic JSON (every field of the alert, times as ISO 8601) or a Slack-compatible
 * message (`{ text, blocks }`, which Slack's incoming webhooks and its clones such as Mattermost accept).
 */
import type { Alert } from './incidents.ts';

export type Format = 'generic' | 'slack';

/** The generic body: one object, `type` first so receivers can switch on it. */
export function genericBody(alert: Alert): Record<string, unknown> {
  return {
    type: `alert.${alert.kind}`,
    id: alert.id,
    kind: alert.kind,
    rule: alert.rule,
    on: alert.on,
    service: alert.service,
    instance: alert.instance,
    summary: alert.summary,
    detail: alert.detail,
    count: alert.count,
    startedAt: new Date(alert.startedAt).toISOString(),
    at: new Date(alert.at).toISOString(),
    ...(alert.metric ? { metric: alert.metric } : {}),
  };
}

/** Slack's mrkdwn treats these three as markup; everything else is text. */
function escapeSlack(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function slackBody(alert: Alert): Record<string, unknown> {
  const icon = alert.kind === 'firing' ? ':rotating_light:' : ':white_check_mark:';
  const label = alert.kind === 'firing' ? 'FIRING' : 'RESOLVED';
  const text = `${icon} [${label}] ${escapeSlack(alert.summary)}`;
  const context = [`rule *${escapeSlack(alert.rule)}*`, `alert \`${alert.id}\``, `since ${new Date(alert.startedAt).toISOString()}`];
  if (alert.count > 1) context.push(`${alert.count} times`);
  const blocks: unknown[] = [{ type: 'section', text: { type: 'mrkdwn', text } }];
  // Slack caps a section's text at 3000 characters.
  if (alert.detail) blocks.push({ type: 'section', text: { type: 'mrkdwn', text: '```' + escapeSlack(alert.detail).slice(0, 2_900) + '```' } });
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: context.join(' · ') }] });
  return { text, blocks };
}

/** The raw body sent (and signed): the same bytes on every attempt. */
export function formatAlert(alert: Alert, format: Format): string {
  return JSON.stringify(format === 'slack' ? slackBody(alert) : genericBody(alert));
}
