// The fields of a user that an admin sets: name, allowed models, expiry and limits. Used by the
// create form (Users) and the edit form (a user's page). Empty means none: no limit, any model.
import { useState } from 'preact/hooks';
import { Field } from '../ui';
import type { Limits, User } from '../types';

const LIMITS: Array<[keyof Limits, string, string]> = [
  ['rpm', 'Requests per minute', 'numeric'],
  ['tpm', 'Tokens per minute', 'numeric'],
  ['tokensPerDay', 'Tokens per day', 'numeric'],
  ['tokensPerMonth', 'Tokens per month', 'numeric'],
  ['usdPerDay', 'US dollars per day', 'decimal'],
  ['usdPerMonth', 'US dollars per month', 'decimal'],
  ['maxConcurrent', 'Requests at once', 'numeric'],
];

export interface UserFields {
  name: string;
  models: string;
  expiresAt: string;
  limits: Record<keyof Limits, string>;
}

export function fieldsOf(user?: User): UserFields {
  const limits = {} as Record<keyof Limits, string>;
  for (const [name] of LIMITS) limits[name] = user?.limits[name] === undefined ? '' : String(user.limits[name]);
  return { name: user?.name ?? '', models: (user?.models ?? []).join(', '), expiresAt: user?.expiresAt ?? '', limits };
}

/** The JSON body of POST or PATCH /admin/users: null removes what was set. A limit that is not a
 * number is sent as written, so the gateway's answer names the field. */
export function bodyOf(fields: UserFields): Record<string, unknown> {
  const limits: Record<string, unknown> = {};
  for (const [name] of LIMITS) {
    const text = fields.limits[name].trim().replace(/[,_\s]/g, '');
    limits[name] = text === '' ? null : Number.isFinite(Number(text)) ? Number(text) : text;
  }
  const models = fields.models
    .split(/[,\n]/)
    .map((m) => m.trim())
    .filter(Boolean);
  return {
    name: fields.name.trim() || null,
    models: models.length ? models : null,
    expiresAt: fields.expiresAt.trim() || null,
    limits,
  };
}

export function UserFieldset(props: { fields: UserFields; onChange: (fields: UserFields) => void }) {
  const { fields, onChange } = props;
  const [open] = useState(true);
  return (
    <>
      <Field label="Name" value={fields.name} onInput={(name) => onChange({ ...fields, name })} />
      <Field
        label="Allowed models"
        value={fields.models}
        onInput={(models) => onChange({ ...fields, models })}
        hint="Comma-separated names or patterns such as gpt-4o*; empty allows every model."
      />
      <Field
        label="Expires at"
        value={fields.expiresAt}
        onInput={(expiresAt) => onChange({ ...fields, expiresAt })}
        placeholder="2030-01-31T00:00:00Z"
        hint="An ISO 8601 time with a time zone; empty never expires."
      />
      {open && (
        <fieldset class="limits">
          <legend>Limits (empty: no limit)</legend>
          {LIMITS.map(([name, label, mode]) => (
            <Field
              key={name}
              label={label}
              value={fields.limits[name]}
              inputMode={mode as 'numeric' | 'decimal'}
              onInput={(value) => onChange({ ...fields, limits: { ...fields.limits, [name]: value } })}
            />
          ))}
        </fieldset>
      )}
    </>
  );
}
