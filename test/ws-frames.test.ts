// The frame reader and the event type finder of WebSocket sessions (src/relay/ws-frames.ts): every
// length form round-trips whatever way the bytes are cut, protocol errors close with their codes,
// and a `type` is found as a JSON parser reads it, or said to be ambiguous.
import { describe, expect, it } from 'vitest';
import { FrameError, FrameReader, MessageAssembler, OP_BINARY, OP_TEXT, encodeFrame, eventType } from '../src/relay/ws-frames.js';

describe('FrameReader', () => {
  it('reads masked frames of every length form back, cut into pieces of any size', () => {
    for (const length of [0, 1, 3, 4, 5, 125, 126, 127, 65535, 65536, 70001]) {
      const payload = Buffer.alloc(length, 0);
      for (let i = 0; i < length; i++) payload[i] = (i * 7 + 3) & 0xff;
      const frame = encodeFrame(OP_BINARY, payload, true);
      for (const piece of [1, 2, 13, 4096, frame.length]) {
        const reader = new FrameReader(1 << 20, true);
        const got = [];
        for (let at = 0; at < frame.length; at += piece) got.push(...reader.push(frame.subarray(at, at + piece)));
        expect(got, `${length} bytes in pieces of ${piece}`).toHaveLength(1);
        expect(got[0]!.payload.equals(payload)).toBe(true);
        expect(got[0]!.raw.equals(frame)).toBe(true);
      }
    }
  });

  it('refuses an unmasked client frame, a masked server frame, RSV bits and an oversized frame', () => {
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        return (err as FrameError).code;
      }
      return undefined;
    };
    expect(code(() => new FrameReader(100, true).push(encodeFrame(OP_TEXT, Buffer.from('x'), false)))).toBe(1002);
    expect(code(() => new FrameReader(100, false).push(encodeFrame(OP_TEXT, Buffer.from('x'), true)))).toBe(1002);
    const rsv = encodeFrame(OP_TEXT, Buffer.from('x'), true);
    rsv[0] = rsv[0]! | 0x40;
    expect(code(() => new FrameReader(100, true).push(rsv))).toBe(1002);
    // Refused from its header alone, before its payload is held.
    expect(code(() => new FrameReader(100, true).push(encodeFrame(OP_TEXT, Buffer.alloc(101), true).subarray(0, 8)))).toBe(1009);
    // A 64-bit length past 2^53.
    expect(code(() => new FrameReader(100, false).push(Buffer.from([0x81, 127, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])))).toBe(1009);
  });

  it('puts fragments together and bounds the whole message', () => {
    const assembler = new MessageAssembler(10);
    const reader = new FrameReader(100, true);
    const first = encodeFrame(OP_TEXT, Buffer.from('hello'), true);
    first[0] = first[0]! & 0x7f; // not FIN
    const [frame] = reader.push(first);
    expect(assembler.add(frame!, true)).toBeUndefined();
    expect(assembler.open).toBe(true);
    const [last] = reader.push(encodeFrame(0, Buffer.from(' you'), true));
    expect(assembler.add(last!, true)?.payload.toString()).toBe('hello you');
    const big = new MessageAssembler(4);
    expect(() => big.add(reader.push(encodeFrame(OP_TEXT, Buffer.from('hello'), true))[0]!, false)).toThrow(FrameError);
  });
});

describe('eventType', () => {
  const of = (text: string, whole = true) => eventType(Buffer.from(text), whole);

  it('finds the top-level type, not a nested one, wherever it stands', () => {
    expect(of('{"type":"response.create","response":{"type":"x"}}')).toEqual({ type: 'response.create', ambiguous: false });
    expect(of('{"item":{"type":"message"},"type":"conversation.item.create"}')).toEqual({ type: 'conversation.item.create', ambiguous: false });
    expect(of('{"audio":"a\\"type\\":\\"b","type":"input_audio_buffer.append"}')).toEqual({ type: 'input_audio_buffer.append', ambiguous: false });
    expect(of(' { "type" : "x" } ')).toEqual({ type: 'x', ambiguous: false });
  });

  it('says ambiguous for a second type, an escaped key or value, and what is not an object', () => {
    expect(of('{"type":"session.update","type":"response.create"}').ambiguous).toBe(true);
    expect(of('{"type":"session.update","typ\\u0065":"response.create"}').ambiguous).toBe(true);
    expect(of('{"type":"response\\u002ecreate"}').ambiguous).toBe(true);
    expect(of('["type","x"]').ambiguous).toBe(true);
    expect(of('{}{"type":"response.create"}').ambiguous).toBe(true);
    expect(of('\ufeff{"type":"x"}').ambiguous).toBe(true);
    expect(of('{"type":"x"').ambiguous).toBe(false);
  });

  it('stops at the first type for the upstream', () => {
    expect(of('{"type":"a","type":"b"}', false)).toEqual({ type: 'a', ambiguous: false });
  });
});
