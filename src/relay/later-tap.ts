// Watches the answers that tell the gateway about work charged later (src/quota/later.ts): a JSON
// answer is copied (up to JSON_LIMIT) and parsed at its end; an SSE answer (a background response
// resumed with `?stream=true`) is read by a usage tap, whose reported usage marks the response's
// last event. Nothing is changed on the way to the client.
import type { TokenUsage } from '../quota/usage.js';
import type { ResponseTap } from './forward.js';
import { isEventStream } from './headers.js';
import { UsageTap } from './usage-tap.js';

/** A batch list page or a response object is far smaller; past this the answer is not read. */
const JSON_LIMIT = 16 * 1024 * 1024;

export class LaterTap implements ResponseTap {
  status = 0;
  private parts: Buffer[] = [];
  private bytes = 0;
  private mode: 'json' | 'sse' | 'none' = 'none';
  private readonly usage = new UsageTap({ stripUsage: false, watch: true });

  start(status: number, headers: Record<string, string | string[] | undefined>): void {
    this.status = status;
    this.mode = isEventStream(headers['content-type']) ? 'sse' : 'json';
    this.usage.start(status, headers);
  }

  chunk(chunk: Buffer): Buffer {
    if (this.mode === 'sse') return this.usage.chunk(chunk);
    if (this.mode === 'json' && this.bytes + chunk.length <= JSON_LIMIT) {
      this.parts.push(Buffer.from(chunk));
      this.bytes += chunk.length;
    } else {
      this.mode = 'none';
      this.parts = [];
    }
    return chunk;
  }

  end(complete: boolean): void {
    this.usage.end(complete);
  }

  /** The JSON answer, when it was 2xx and parses: whole, even if the client left before its end
   * (a batch created is a batch to charge, whoever reads the answer). */
  json(): unknown {
    if (this.mode !== 'json' || this.status < 200 || this.status >= 300) return undefined;
    try {
      return JSON.parse(Buffer.concat(this.parts).toString('utf8'));
    } catch {
      return undefined;
    }
  }

  /** The usage a stream reported (a response's last event), never one the gateway counted. */
  streamedUsage(): TokenUsage | undefined {
    if (this.mode !== 'sse') return undefined;
    const measured = this.usage.measure(() => 0);
    return measured && !measured.estimated ? measured.usage : undefined;
  }
}
