// The signature of a webhook delivery: `x-keyrelay-signature: t=<unix seconds>,v1=<hex>`, where
// the hex is HMAC-SHA256 of "<t>.<body>" under the webhook's secret (the scheme Stripe uses, so
// receivers can check it the same way and refuse old timestamps to stop replays).
import { createHmac } from 'node:crypto';

export const SIGNATURE_HEADER = 'x-keyrelay-signature';

export function signature(secret: string, body: string, unixSeconds: number): string {
  const v1 = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${v1}`;
}
