// The signing secret of a webhook added at run time is kept sealed under KEYRELAY_SECRET
// (src/secrets/box.ts), as pool keys are, bound to the webhook's id: a sealed value copied to
// another webhook does not open there. Without KEYRELAY_SECRET no such webhook is added (409
// secret_not_configured). A webhook kept before secrets were sealed holds its secret as given: it
// still signs, and `keyrelay secrets rotate` (reseal) seals it.
import { GatewayError } from '../errors.js';
import { type SecretBox, SecretError, sealedKeyId } from '../secrets/box.js';
import type { SigningWebhook, StoredWebhook, Webhook } from './types.js';

/** Where a webhook's secret is kept, as errors name it and as the seal is bound to. */
export const webhookPlace = (id: string): string => `webhook ${id}`;

/** The webhook as the store keeps it; 409 secret_not_configured without KEYRELAY_SECRET. */
export function sealWebhook(hook: SigningWebhook, box: SecretBox): StoredWebhook {
  if (!box.configured) throw new GatewayError('secret_not_configured', { param: 'secret' });
  const { secret, source: _source, ...rest } = hook;
  return { ...rest, source: 'store', sealed: box.seal(secret, webhookPlace(hook.id)), last4: secret.slice(-4) };
}

/** The signing secret of a stored webhook. Throws SecretError naming KEYRELAY_SECRET when it does not open. */
export function openSecret(stored: StoredWebhook, box: SecretBox): string {
  if (stored.sealed !== undefined) return box.open(stored.sealed, webhookPlace(stored.id));
  if (typeof stored.secret === 'string') return stored.secret;
  throw new SecretError(`the store holds ${webhookPlace(stored.id)} without a signing secret`);
}

/** What the API shows of a stored webhook, and what events are routed by: never the secret. */
export function storedView(stored: StoredWebhook): Webhook {
  const { sealed: _sealed, secret, last4, ...rest } = stored;
  return { ...rest, last4: last4 ?? (typeof secret === 'string' ? secret.slice(-4) : '') };
}

/** The webhook sealed under the current KEYRELAY_SECRET; undefined when it is already. */
export function resealed(stored: StoredWebhook, box: SecretBox): StoredWebhook | undefined {
  if (stored.sealed !== undefined && sealedKeyId(stored.sealed) === box.currentId) return undefined;
  return sealWebhook({ ...storedView(stored), secret: openSecret(stored, box) }, box);
}
