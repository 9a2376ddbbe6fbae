// Small pieces every page uses. Everything a client chose (model names, user agents, error texts)
// reaches the page as a text child, which Preact writes as a text node: never as markup.
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { follow } from './router';
import { localTime, utcTime } from './format';

export function Link(props: { to: string; children: ComponentChildren; class?: string; current?: boolean }) {
  return (
    <a href={`/console${props.to}`} class={props.class} aria-current={props.current ? 'page' : undefined} onClick={(e) => follow(e, props.to)}>
      {props.children}
    </a>
  );
}

/** A time in the browser's zone, with the UTC time on hover. */
export function Time(props: { iso: string | null | undefined }) {
  if (!props.iso) return <span>–</span>;
  return (
    <time dateTime={props.iso} title={utcTime(props.iso)}>
      {localTime(props.iso)}
    </time>
  );
}

export function Page(props: { title: string; children: ComponentChildren; actions?: ComponentChildren }) {
  return (
    <section class="page" aria-labelledby="page-title">
      <header class="page-head">
        <h1 id="page-title" tabIndex={-1}>
          {props.title}
        </h1>
        {props.actions && <div class="actions">{props.actions}</div>}
      </header>
      {props.children}
    </section>
  );
}

/** What an empty list says: what there is not, and what to do next. */
export function Empty(props: { children: ComponentChildren }) {
  return <p class="empty">{props.children}</p>;
}

export function ErrorNote(props: { error: Error | undefined | null }) {
  if (!props.error) return null;
  return (
    <p class="error" role="alert">
      {props.error.message}
    </p>
  );
}

export function Loading(props: { when: boolean }) {
  return props.when ? (
    <p class="loading" role="status">
      Loading…
    </p>
  ) : null;
}

/** A table that scrolls sideways on a narrow screen instead of widening the page. */
export function Table(props: { caption: string; head: string[]; children: ComponentChildren; class?: string }) {
  return (
    <div class="table-wrap" tabIndex={0} role="region" aria-label={props.caption}>
      <table class={props.class}>
        <caption class="visually-hidden">{props.caption}</caption>
        <thead>
          <tr>
            {props.head.map((h) => (
              <th scope="col" key={h}>
                {h}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{props.children}</tbody>
      </table>
    </div>
  );
}

let fieldIds = 0;
/** A labelled input; the label is the field's accessible name. */
export function Field(props: {
  label: string;
  value: string;
  onInput: (value: string) => void;
  type?: 'text' | 'password' | 'search' | 'date' | 'datetime-local';
  name?: string;
  placeholder?: string;
  required?: boolean;
  autoComplete?: string;
  hint?: string;
  inputMode?: 'numeric' | 'decimal' | 'text' | 'search';
}) {
  const [id] = useState(() => `field-${++fieldIds}`);
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      <input
        id={id}
        name={props.name}
        // Preact's types tie `type` to the other attributes allowed with it; all here are text-like.
        {...({ type: props.type ?? 'text' } as Record<string, string>)}
        value={props.value}
        placeholder={props.placeholder}
        required={props.required}
        autoComplete={props.autoComplete ?? 'off'}
        inputMode={props.inputMode}
        spellcheck={false}
        aria-describedby={props.hint ? `${id}-hint` : undefined}
        onInput={(e) => props.onInput((e.currentTarget as HTMLInputElement).value)}
      />
      {props.hint && (
        <small id={`${id}-hint`} class="hint">
          {props.hint}
        </small>
      )}
    </div>
  );
}

export function Select(props: { label: string; value: string; onChange: (value: string) => void; options: Array<[value: string, text: string]> }) {
  const [id] = useState(() => `field-${++fieldIds}`);
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      <select id={id} value={props.value} onChange={(e) => props.onChange((e.currentTarget as HTMLSelectElement).value)}>
        {props.options.map(([value, text]) => (
          <option value={value} key={value}>
            {text}
          </option>
        ))}
      </select>
    </div>
  );
}

/** A button that asks once more in place (no window.confirm dialog) before it acts. */
/** A form's last row: its submit button (the primary action) and Cancel. */
export function SubmitOrCancel(props: { submit: string; onCancel: () => void }) {
  return (
    <div class="actions">
      <button type="submit" class="primary">
        {props.submit}
      </button>
      <button type="button" onClick={props.onCancel}>
        Cancel
      </button>
    </div>
  );
}

export function ConfirmButton(props: { label: string; confirm: string; onConfirm: () => void | Promise<void>; disabled?: boolean }) {
  const [asking, setAsking] = useState(false);
  const askRef = useRef<HTMLButtonElement>(null);
  const confirmRef = useRef<HTMLButtonElement>(null);
  const cancelled = useRef(false);
  // The keyboard's focus follows the question, so Enter confirms and Tab reaches Cancel; answering
  // no gives the focus back to the button that asked, instead of dropping it on the page's body.
  useEffect(() => {
    if (asking) confirmRef.current?.focus();
    else if (cancelled.current) askRef.current?.focus();
    cancelled.current = false;
  }, [asking]);
  const cancel = () => {
    cancelled.current = true;
    setAsking(false);
  };
  if (!asking) {
    return (
      <button type="button" class="danger" ref={askRef} disabled={props.disabled} onClick={() => setAsking(true)}>
        {props.label}
      </button>
    );
  }
  return (
    // Escape answers no, as it closes a dialog.
    <span class="confirm" onKeyDown={(e) => e.key === 'Escape' && (e.preventDefault(), cancel())}>
      <button
        type="button"
        class="danger"
        ref={confirmRef}
        onClick={async () => {
          setAsking(false);
          await props.onConfirm();
        }}
      >
        {props.confirm}
      </button>
      <button type="button" onClick={cancel}>
        Cancel
      </button>
    </span>
  );
}

/** Use against a limit, as a bar; no limit shows the use alone. */
export function UsageBar(props: { label: string; used: number; limit: number | null | undefined; text: (n: number) => string }) {
  const limit = props.limit ?? null;
  const share = limit ? props.used / limit : 0;
  return (
    <div class="usage-bar">
      <div class="usage-label">
        <span>{props.label}</span>
        <span>
          {props.text(props.used)} {limit === null ? '(no limit)' : `of ${props.text(limit)}`}
        </span>
      </div>
      {limit !== null && (
        <meter min={0} max={limit || 1} low={(limit || 1) * 0.8} high={(limit || 1) * 0.95} optimum={0} value={Math.min(props.used, limit || 1)} aria-label={props.label}>
          {Math.round(share * 100)}%
        </meter>
      )}
    </div>
  );
}

export function Pager(props: { onPrevious?: () => void; onNext?: () => void; label: string }) {
  return (
    <nav class="pager" aria-label={props.label}>
      <button type="button" disabled={!props.onPrevious} onClick={props.onPrevious}>
        Previous page
      </button>
      <button type="button" disabled={!props.onNext} onClick={props.onNext}>
        Next page
      </button>
    </nav>
  );
}

export function Badge(props: { state: string }) {
  return <span class={`badge badge-${props.state.replace(/[^a-z_]/g, '')}`}>{props.state}</span>;
}
