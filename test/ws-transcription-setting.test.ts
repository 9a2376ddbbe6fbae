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
  s.sent(on('dear'));
  s.account(on('dear'), true);
  return s;
}

describe('the transcription in force', () => {
  it('is a dearer or "on" setting as soon as the client sends it', () => {
    const s = new TranscriptionSettings(rate, both);
    s.sent(on('cheap'));
    expect(s.inForce).toEqual(on('cheap'));
    s.sent(on('dear'));
    expect(s.inForce).toEqual(on('dear'));
  });

  it('is a cheaper, shorter or "off" setting only once the upstream\'s account shows it', () => {
    const s = confirmedDear();
    s.sent(on('cheap'));
    s.sent(OFF);
    s.sent(on('dear', 1));
    expect(s.inForce).toEqual(on('dear', 1));
    s.account(on('cheap'), true);
    expect(s.inForce).toEqual(on('dear', 1));
    s.account(OFF, true);
    s.account(on('dear', 0), true);
    expect(s.inForce).toEqual(on('dear'));
  });

  it('never takes an error for an answer: a refused update counts until the next account, which answers the oldest', () => {
    const s = confirmedDear();
    s.sent(OFF); // refused by the upstream: an error, no account
    s.sent(on('cheap'));
    expect(s.inForce).toEqual(on('dear'));
    // The account answers the cheap update; the gateway pops the refused one, the oldest.
    s.account(on('cheap'), true);
    expect(s.inForce).toEqual(on('cheap'));
  });

  it('never counts fewer updates than the upstream has not answered: a dearer one sent last is reserved for until answered', () => {
    const s = confirmedDear();
    s.sent(OFF); // refused
    s.sent(OFF); // taken
    s.sent(on('dear', 2)); // not answered yet
    s.account(OFF, true);
    expect(s.inForce).toEqual(on('dear', 2));
  });

  it('keeps what it knew when an account names no transcription', () => {
    const s = confirmedDear();
    s.sent(OFF);
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
    money.sent(on('odd'));
    expect(money.inForce).toEqual(on('odd'));
  });
});
