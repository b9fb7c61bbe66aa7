/**
 * File secret store: a directory with one file per field (`username`, `password`,
 * optional `host`, `port`, `dbname`), as a Kubernetes Secret mounted as a volume, a
 * Docker secret or a CSI secrets-store volume lays it out. One trailing newline of each
 * file is removed (files written with `echo` end with one). Hidden entries (`..data`
 * and the timestamped directories of a Kubernetes mount) are ignored; other files of at
 * most 64 KiB land in `extra`.
 */
import { readFile, readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { LatchkeyError } from '../errors.js';
import type { SecretRef } from '../protocol/messages.js';
import { secretStoreError, throwIfAborted } from './errors.js';
import { toServiceSecret } from './fields.js';
import type { ServiceSecret } from './types.js';

export type FileSecretRef = Extract<SecretRef, { store: 'file' }>;

const MAX_FILE_BYTES = 64 * 1024;
const FIELD_NAME = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;

export interface FileSecretStoreOptions {
  /**
   * Directories under which secret directories must lie. When set, a ref pointing
   * elsewhere is refused (`E_GUARDRAIL`), so a command cannot make the agent read an
   * arbitrary directory. The check is on real paths (`realpath`): `..` and symbolic links
   * cannot lead out of a root, and neither can a field file that is a link. The resolver
   * always sets it (default `DEFAULT_SECRET_FILE_ROOTS`).
   */
  roots?: readonly string[];
}

/**
 * Default of `LATCHKEY_SECRET_FILE_ROOTS`: the conventional secret mounts, and where the
 * Helm chart mounts its `fileSecrets` (`/var/run/latchkey/secrets/<name>`).
 */
export const DEFAULT_SECRET_FILE_ROOTS: readonly string[] = Object.freeze([
  '/var/run/secrets/latchkey',
  '/run/secrets',
  '/var/run/latchkey/secrets',
]);

export async function readSecretDirectory(
  ref: FileSecretRef,
  opts: FileSecretStoreOptions = {},
  signal?: AbortSignal,
): Promise<ServiceSecret> {
  throwIfAborted(signal);
  const dir = ref.path;
  const where = `secret directory ${dir}`;
  if (!path.isAbsolute(dir)) {
    throw new LatchkeyError('E_SECRET', `${where}: path must be absolute`);
  }
  const outside = (): LatchkeyError =>
    new LatchkeyError('E_GUARDRAIL', `${where} is outside the allowed secret directories`, {
      details: { guardrail: 'secret-file-roots' },
    });
  const roots = opts.roots ? await realRoots(opts.roots) : undefined;
  const confined = (real: string): boolean =>
    roots === undefined || roots.some((root) => isInside(real, root));
  // Refuse on the path as given first, so nothing outside the roots is even looked at
  // (not even whether it exists); then again on the real path, after links.
  const literal = path.resolve(dir);
  if (
    opts.roots &&
    !confined(literal) &&
    !opts.roots.some((root) => isInside(literal, path.resolve(root)))
  ) {
    throw outside();
  }
  let resolved: string;
  try {
    resolved = await realpath(literal);
  } catch (err) {
    throw fsError(err, where);
  }
  if (!confined(resolved)) throw outside();

  let names: string[];
  try {
    names = await readdir(resolved);
  } catch (err) {
    throw fsError(err, where);
  }

  const fields: Record<string, string> = {};
  for (const name of names.sort()) {
    if (name.startsWith('.') || !FIELD_NAME.test(name)) continue;
    try {
      const file = await realpath(path.join(resolved, name));
      if (!confined(file)) throw outside();
      const info = await stat(file);
      if (!info.isFile()) continue;
      if (info.size > MAX_FILE_BYTES) {
        if (name === 'username' || name === 'password') {
          throw new LatchkeyError('E_SECRET', `${where}: file "${name}" is larger than 64 KiB`);
        }
        continue;
      }
      throwIfAborted(signal);
      fields[name] = stripOneNewline(await readFile(file, 'utf8'));
    } catch (err) {
      if (err instanceof LatchkeyError) throw err;
      throw fsError(err, `${where}: file "${name}"`);
    }
  }
  return toServiceSecret(fields, where);
}

function stripOneNewline(text: string): string {
  if (text.endsWith('\r\n')) return text.slice(0, -2);
  if (text.endsWith('\n')) return text.slice(0, -1);
  return text;
}

/** The real paths of the roots that exist (a missing root holds nothing). */
async function realRoots(roots: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const root of roots) {
    try {
      out.push(await realpath(path.resolve(root)));
    } catch {
      // absent or unreadable: nothing can lie under it
    }
  }
  return out;
}

function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function fsError(err: unknown, where: string): LatchkeyError {
  const code = (err as { code?: unknown } | null)?.code;
  switch (code) {
    case 'ENOENT':
      return secretStoreError('E_SECRET', `${where} does not exist`, err);
    case 'ENOTDIR':
      return secretStoreError('E_SECRET', `${where} is not a directory`, err);
    case 'EACCES':
    case 'EPERM':
      return secretStoreError('E_SECRET', `${where} is not readable by the agent`, err);
    default:
      return secretStoreError('E_SECRET', `${where} cannot be read`, err);
  }
}
