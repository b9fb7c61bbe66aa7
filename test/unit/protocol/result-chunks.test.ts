import { describe, expect, it } from 'vitest';
import { ResultChunkSchema, type Result } from '../../../src/protocol/messages.js';
import { ResultFrame, charIndexOfByte, nextChunk } from '../../../src/protocol/result-frame.js';

function frameOf(text: string): ResultFrame {
  const result: Result = {
    type: 'result',
    commandId: 'cmd-c',
    kind: 'discover',
    status: 'ok',
    output: { text },
    timings: {
      receivedAt: '2026-11-25T20:00:00.000Z',
      finishedAt: '2026-11-25T20:00:01.000Z',
      queueMs: 0,
      runMs: 1000,
    },
  };
  return ResultFrame.of(result);
}

describe('nextChunk', () => {
  it('cuts at character boundaries, within the bound, and the pieces give the text back', () => {
    const frame = frameOf('🙂"\\é日\n'.repeat(300) + '\u0001x🙂');
    for (const bound of [300, 301, 302, 303, 517, 1024]) {
      const parts: Buffer[] = [];
      let char = 0;
      let byte = 0;
      while (byte < frame.bytes) {
        const piece = nextChunk(frame, char, byte, bound);
        expect(Buffer.byteLength(piece.text, 'utf8')).toBeLessThanOrEqual(bound);
        const msg = ResultChunkSchema.parse(JSON.parse(piece.text));
        expect(msg).toMatchObject({ offset: byte, size: frame.bytes, sha256: frame.sha256 });
        // Never half a surrogate pair: each piece is well-formed on its own.
        expect(
          /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(msg.data),
        ).toBe(false);
        parts.push(Buffer.from(msg.data, 'utf8'));
        expect(piece.endByte).toBe(byte + Buffer.byteLength(msg.data, 'utf8'));
        expect(charIndexOfByte(frame.text, piece.endByte)).toBe(piece.endChar);
        char = piece.endChar;
        byte = piece.endByte;
      }
      expect(Buffer.concat(parts).toString('utf8')).toBe(frame.text);
    }
  });

  it('says when an offset falls inside a character', () => {
    expect(charIndexOfByte('a🙂b', 1)).toBe(1);
    expect(charIndexOfByte('a🙂b', 2)).toBeUndefined();
    expect(charIndexOfByte('a🙂b', 5)).toBe(3);
    expect(charIndexOfByte('a🙂b', 7)).toBeUndefined();
  });

  it('answers E_TOO_LARGE in place of a result, with its id, kind and timings', () => {
    const frame = frameOf('x'.repeat(5000));
    expect(frame.tooLarge(4096).result()).toEqual({
      type: 'result',
      commandId: 'cmd-c',
      kind: 'discover',
      status: 'error',
      error: {
        code: 'E_TOO_LARGE',
        message: `result of ${frame.bytes} bytes exceeds the frame limit of 4096 bytes and the control plane did not accept result chunks (welcome.resultChunks)`,
        retryable: false,
      },
      timings: frame.result().timings,
    });
  });
});
