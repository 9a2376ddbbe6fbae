// Playground: one streamed chat through /v1/chat/completions with a user key, as any client would
// send it (the session cookie is never used by /v1). The key is kept in this component's memory
// only: never localStorage, sessionStorage or a cookie. Shows the tokens as they arrive, the time
// to the first byte, the tokens counted and the cost the gateway charged for the call.
import { useRef, useState } from 'preact/hooks';
import { api } from '../api';
import { ms, num, usd } from '../format';
import { type Session, paths, rememberedKey } from '../session';
import { Empty, ErrorNote, Field, Link, Select } from '../ui';
import { Page } from '../ui';
import type { RequestRecord } from '../types';

interface Result {
  ttfbMs?: number;
  chunks: number;
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  requestId?: string;
  costUsd?: number;
  status?: number;
}

/** Reads an SSE body and calls `onData` with each event's data, lines split anywhere in the bytes. */
async function readEvents(body: ReadableStream<Uint8Array>, onData: (data: string) => void): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    const events = buffer.split(/\r?\n\r?\n/);
    buffer = events.pop() ?? '';
    for (const event of events) {
      const data = event
        .split(/\r?\n/)
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).replace(/^ /, ''))
        .join('\n');
      if (data) onData(data);
    }
  }
}

export function Playground(props: { session: Session }) {
  const [key, setKey] = useState(rememberedKey());
  const [models, setModels] = useState<string[]>([]);
  const [model, setModel] = useState('');
  const [prompt, setPrompt] = useState('Say hello in five words.');
  const [answer, setAnswer] = useState('');
  const [result, setResult] = useState<Result | null>(null);
  const [error, setError] = useState<Error | undefined>();
  const [busy, setBusy] = useState(false);
  const abort = useRef<AbortController | null>(null);

  async function loadModels() {
    setError(undefined);
    try {
      const res = await fetch('/v1/models', { headers: { authorization: `Bearer ${key}` }, credentials: 'omit', cache: 'no-store' });
      const body = (await res.json()) as { data?: Array<{ id: string }>; error?: { message: string } };
      if (!res.ok) throw new Error(body.error?.message ?? `${res.status}`);
      const ids = (body.data ?? []).map((m) => m.id).sort();
      setModels(ids);
      if (!ids.includes(model)) setModel(ids[0] ?? '');
    } catch (err) {
      setError(err as Error);
    }
  }

  async function costOf(requestId: string): Promise<number | undefined> {
    // The log is written a moment after the answer ends: a few tries, then the call's page link.
    for (let i = 0; i < 8; i++) {
      try {
        const record = await api<RequestRecord>('GET', `${paths(props.session.role).requests}/${encodeURIComponent(requestId)}`);
        if (record.costMicros !== undefined) return record.costMicros / 1_000_000;
      } catch {
        // Not yet in the log.
      }
      await new Promise((resolve) => setTimeout(resolve, 250 * (i + 1)));
    }
    return undefined;
  }

  async function send() {
    setBusy(true);
    setError(undefined);
    setAnswer('');
    const controller = new AbortController();
    abort.current = controller;
    const started = performance.now();
    const run: Result = { chunks: 0 };
    setResult({ ...run });
    try {
      const res = await fetch('/v1/chat/completions', {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        credentials: 'omit',
        body: JSON.stringify({ model, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: prompt }] }),
        signal: controller.signal,
      });
      run.status = res.status;
      run.requestId = res.headers.get('x-keyrelay-request-id') ?? undefined;
      if (!res.ok || !res.body) {
        const body = (await res.json().catch(() => ({}))) as { error?: { message?: string } };
        throw new Error(body.error?.message ?? `The gateway answered ${res.status}.`);
      }
      await readEvents(res.body, (data) => {
        if (run.ttfbMs === undefined) run.ttfbMs = performance.now() - started;
        if (data === '[DONE]') return;
        const chunk = JSON.parse(data) as {
          choices?: Array<{ delta?: { content?: string } }>;
          usage?: Result['usage'] | null;
          error?: { message?: string };
        };
        if (chunk.error) throw new Error(chunk.error.message ?? 'The stream broke off.');
        const text = chunk.choices?.[0]?.delta?.content;
        if (text) {
          run.chunks += 1;
          setAnswer((current) => current + text);
        }
        if (chunk.usage) run.usage = chunk.usage;
        setResult({ ...run });
      });
      setResult({ ...run });
      if (run.requestId) {
        run.costUsd = await costOf(run.requestId);
        setResult({ ...run });
      }
    } catch (err) {
      if ((err as Error).name !== 'AbortError') setError(err as Error);
    } finally {
      abort.current = null;
      setBusy(false);
    }
  }

  return (
    <Page title="Playground">
      <form
        class="panel"
        aria-label="Chat"
        onSubmit={(event) => {
          event.preventDefault();
          void send();
        }}
      >
        <Field
          label="API key (sk-kr-…)"
          type="password"
          autoComplete="off"
          value={key}
          onInput={setKey}
          required
          hint="A user key. It stays in this page's memory only and is sent to /v1 like any client's key."
        />
        <div class="inline-form">
          <button type="button" onClick={() => void loadModels()} disabled={!key}>
            Load models
          </button>
          {models.length > 0 && <Select label="Model" value={model} onChange={setModel} options={models.map((m): [string, string] => [m, m])} />}
        </div>
        {models.length === 0 && <Empty>Enter a key and press “Load models” to list the models that key may use.</Empty>}
        <div class="field">
          <label for="playground-prompt">Message</label>
          <textarea id="playground-prompt" rows={4} value={prompt} onInput={(e) => setPrompt((e.currentTarget as HTMLTextAreaElement).value)} />
        </div>
        <div class="actions">
          <button type="submit" class="primary" disabled={busy || !model || !key}>
            Send
          </button>
          {busy && (
            <button type="button" onClick={() => abort.current?.abort()}>
              Stop
            </button>
          )}
        </div>
      </form>
      <ErrorNote error={error} />
      <h2>Answer</h2>
      <pre class="answer" aria-live="polite" aria-busy={busy}>
        {answer}
      </pre>
      {result && (
        <dl class="facts" aria-label="This call">
          <div>
            <dt>Time to first byte</dt>
            <dd data-fact="ttfb">{ms(result.ttfbMs)}</dd>
          </div>
          <div>
            <dt>Chunks received</dt>
            <dd data-fact="chunks">{num(result.chunks)}</dd>
          </div>
          <div>
            <dt>Tokens (in / out)</dt>
            <dd data-fact="tokens">{result.usage ? `${num(result.usage.prompt_tokens)} / ${num(result.usage.completion_tokens)}` : '–'}</dd>
          </div>
          <div>
            <dt>Cost</dt>
            <dd data-fact="cost">{result.costUsd === undefined ? '–' : usd(result.costUsd)}</dd>
          </div>
          <div>
            <dt>Request</dt>
            <dd>{result.requestId ? <Link to={`/requests/${encodeURIComponent(result.requestId)}`}>{result.requestId}</Link> : '–'}</dd>
          </div>
        </dl>
      )}
    </Page>
  );
}
