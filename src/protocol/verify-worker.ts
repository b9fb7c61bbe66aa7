/**
 * The code of a signature-verification worker thread (see `verify-pool.ts`).
 *
 * It is kept as source text and started with `new Worker(source, { eval: true })` so that
 * the same worker runs from the compiled agent (`dist/`), under `tsx` and under vitest,
 * none of which would otherwise agree on a worker file's path and extension. It is plain
 * CommonJS using only `node:crypto` and `node:worker_threads`.
 *
 * Protocol (one message per batch, buffers transferred, not copied):
 * - `workerData.keys`: the trusted public keys as SPKI DER (`Uint8Array[]`), indexed;
 * - in:  `{ id, data, offsets, sigs, keys }`: `data` the signing inputs end to end,
 *   item `i` is `data[offsets[i] .. offsets[i+1])`, its 64-byte signature
 *   `sigs[64i .. 64i+64)` and its key index `keys[i]`;
 * - out: `{ id, ok }` with `ok[i]` 1 when item `i`'s Ed25519 signature verifies, else 0.
 * Anything unexpected (a bad key index, a throwing verify) is 0: never "valid".
 */
export const VERIFY_WORKER_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const { createPublicKey, verify } = require('node:crypto');
const keys = workerData.keys.map((der) =>
  createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' }),
);
parentPort.on('message', (m) => {
  const data = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength);
  const sigs = Buffer.from(m.sigs.buffer, m.sigs.byteOffset, m.sigs.byteLength);
  const n = m.keys.length;
  const ok = new Uint8Array(n);
  for (let i = 0; i < n; i += 1) {
    const key = keys[m.keys[i]];
    if (key === undefined) continue;
    try {
      ok[i] = verify(
        null,
        data.subarray(m.offsets[i], m.offsets[i + 1]),
        key,
        sigs.subarray(i * 64, i * 64 + 64),
      )
        ? 1
        : 0;
    } catch {
      ok[i] = 0;
    }
  }
  parentPort.postMessage({ id: m.id, ok }, [ok.buffer]);
});
`;
