// The transcription a realtime session's audio is reserved for (src/relay/ws-transcription-setting.ts),
// as the client's updates and the upstream's answers arrive in every order the wire allows.
import { describe, expect, it } from 'vitest';
import { OFF, type Setting, TranscriptionSettings } from '../src/relay/ws-transcription-setting.js';

// Per second: the dear model costs more of both, the cheap one less; "odd" is dearer in money only.
const RATES: Record<string, { tokens: number; micros: number }> = { dear: { tokens: 40, micros: 320 }, cheap: { tokens: 40, micros: 160 }, odd: { tokens: 0, micros: 1000 } };
const rate = (model: string | undefined) => RATES[model ?? ''] ?? { tokens: 40, micros: 0 };
const on = (model: string, promptSeconds = 0): Setting => ({ on: true, model, promptSeconds });
const both = { tokens: true, micros: true };

function confirmedDear(): TranscriptionSettings {
  const s = new TranscriptionSettings(rate, both);
  s.sent('e0', on('dear'));
  s.account(on('dear'), true);
  return s;
}

describe('the transcription in force', () => {
  it('is a dearer or "on" setting as soon as the client sends it', () => {
    const s = new TranscriptionSettings(rate, both);
    s.sent('e1', on('cheap'));
    expect(s.inForce).toEqual(on('cheap'));
    s.sent('e2', on('dear'));
    expect(s.inForce).toEqual(on('dear'));
  });

  it('is a cheaper, shorter or "off" setting only once the upstream\'s account shows it', () => {
    const s = confirmedDear();
    s.sent('e1', on('cheap'));
    s.sent('e2', OFF);
    s.sent('e3', on('dear', 1));
    expect(s.inForce).toEqual(on('dear', 1));
    s.account(on('cheap'), true);
    expect(s.inForce).toEqual(on('dear', 1));
    s.account(OFF, true);
    s.account(on('dear', 0), true);
    expect(s.inForce).toEqual(on('dear'));
  });

  it('drops an update the upstream refused by its event_id, and keeps what was in force', () => {
    const s = confirmedDear();
    s.sent('e1', OFF);
    s.refused('e1');
    expect(s.inForce).toEqual(on('dear'));
    s.sent('e2', on('cheap'));
    s.account(on('cheap'), true);
    expect(s.inForce).toEqual(on('cheap'));
  });

  it('takes an error naming no update for no answer: the update stays unanswered, never believed early', () => {
    const s = confirmedDear();
    s.sent(undefined, OFF);
    s.refused(undefined);
    s.refused('some other event');
    s.sent('e2', on('dear'));
    // The upstream answers the second update; the first, refused, was never answered by name.
    s.account(on('dear'), true);
    expect(s.inForce).toEqual(on('dear'));
  });

  it('keeps what it knew when an account names no transcription', () => {
    const s = confirmedDear();
    s.sent('e1', OFF);
    s.account(undefined, true);
    expect(s.inForce).toEqual(on('dear'));
  });

  it('says when no model covers both limits, only for the limits the user has', () => {
    expect(confirmedDear().comparable(on('odd'))).toBe(false);
    expect(confirmedDear().comparable(on('cheap'))).toBe(true);
    expect(confirmedDear().comparable(OFF)).toBe(true);
    const money = new TranscriptionSettings(rate, { tokens: false, micros: true });
    money.account(on('dear'), false);
    expect(money.comparable(on('odd'))).toBe(true);
    money.sent('e1', on('odd'));
    expect(money.inForce).toEqual(on('odd'));
  });
});
