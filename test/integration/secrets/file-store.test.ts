import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LatchkeyError } from '../../../src/errors.js';
import { readSecretDirectory } from '../../../src/secrets/file.js';
import { createSecretResolver } from '../../../src/secrets/index.js';
import type { AwsClientFactory } from '../../../src/aws/types.js';

const PASSWORD = 'file-Pa55word';
let root: string;

async function errorOf(p: Promise<unknown>): Promise<LatchkeyError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(LatchkeyError);
    return err as LatchkeyError;
  }
  throw new Error('expected a rejection');
}

/** Lays a secret out as the kubelet mounts one: files are symlinks into `..data/`. */
async function kubeletLayout(dir: string, files: Record<string, string>): Promise<void> {
  const ts = path.join(dir, '..2026_11_25_20_00_00.123456789');
  await mkdir(ts, { recursive: true });
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(ts, name), text);
  await symlink(path.basename(ts), path.join(dir, '..data'));
  for (const name of Object.keys(files)) {
    await symlink(path.join('..data', name), path.join(dir, name));
  }
}

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'latchkey-secrets-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('file secret store (real directory)', () => {
  it('reads a kubelet-style mount, strips one trailing newline, ignores hidden entries', async () => {
    const dir = path.join(root, 'pg');
    await mkdir(dir);
    await kubeletLayout(dir, {
      username: 'latchkey_admin\n',
      password: `${PASSWORD}\n`,
      host: 'pg.internal\r\n',
      port: '5432\n',
      dbname: 'app',
      'ca.crt': '-----BEGIN CERTIFICATE-----\n',
    });
    const secret = await readSecretDirectory({ store: 'file', path: dir });
    expect(secret).toEqual({
      username: 'latchkey_admin',
      password: PASSWORD,
      host: 'pg.internal',
      port: 5432,
      dbname: 'app',
      extra: { 'ca.crt': '-----BEGIN CERTIFICATE-----' },
    });
  });

  it('keeps inner whitespace and all but one trailing newline', async () => {
    const dir = path.join(root, 'spaces');
    await mkdir(dir);
    await writeFile(path.join(dir, 'username'), 'u');
    await writeFile(path.join(dir, 'password'), ' a b \n\n');
    expect((await readSecretDirectory({ store: 'file', path: dir })).password).toBe(' a b \n');
  });

  it('a missing directory, missing password or relative path is E_SECRET with the reason', async () => {
    const gone = await errorOf(
      readSecretDirectory({ store: 'file', path: path.join(root, 'nope') }),
    );
    expect(gone.code).toBe('E_SECRET');
    expect(gone.message).toMatch(/does not exist$/);

    const dir = path.join(root, 'nopass');
    await mkdir(dir);
    await writeFile(path.join(dir, 'username'), 'u');
    await writeFile(path.join(dir, 'token'), PASSWORD);
    const noPass = await errorOf(readSecretDirectory({ store: 'file', path: dir }));
    expect(noPass.message).toBe(`secret directory ${dir}: field "password" is missing`);
    expect(noPass.message).not.toContain(PASSWORD);

    const relative = await errorOf(readSecretDirectory({ store: 'file', path: 'run/secrets' }));
    expect(relative.message).toMatch(/must be absolute/);

    const file = path.join(root, 'plain-file');
    await writeFile(file, 'x');
    const notDir = await errorOf(readSecretDirectory({ store: 'file', path: file }));
    expect(notDir.message).toMatch(/is not a directory/);
  });

  it('a password that is a directory, or larger than 64 KiB, is refused (E_SECRET)', async () => {
    const dir = path.join(root, 'odd');
    await mkdir(path.join(dir, 'password'), { recursive: true });
    await writeFile(path.join(dir, 'username'), 'u');
    const notFile = await errorOf(readSecretDirectory({ store: 'file', path: dir }));
    expect(notFile.message).toBe(`secret directory ${dir}: field "password" is missing`);

    const big = path.join(root, 'big');
    await mkdir(big);
    await writeFile(path.join(big, 'username'), 'u');
    await writeFile(path.join(big, 'password'), 'x'.repeat(64 * 1024 + 1));
    const tooBig = await errorOf(readSecretDirectory({ store: 'file', path: big }));
    expect(tooBig.code).toBe('E_SECRET');
    expect(tooBig.message).toMatch(/file "password" is larger than 64 KiB/);
  });

  it('with roots configured, refuses directories outside them', async () => {
    const dir = path.join(root, 'pg');
    expect(
      (await readSecretDirectory({ store: 'file', path: dir }, { roots: [root] })).username,
    ).toBe('latchkey_admin');
    const err = await errorOf(
      readSecretDirectory({ store: 'file', path: `${root}/../etc` }, { roots: [root] }),
    );
    expect(err.message).toMatch(/outside the allowed secret directories/);
  });

  it('the resolver caches file secrets for the TTL and sees a change after invalidate()', async () => {
    const dir = path.join(root, 'rotating');
    await mkdir(dir);
    await writeFile(path.join(dir, 'username'), 'u');
    await writeFile(path.join(dir, 'password'), 'one');
    const aws: AwsClientFactory = {
      client: () => {
        throw new Error('AWS is not used by the file store');
      },
    };
    const resolver = createSecretResolver({ aws, defaultRegion: 'eu-west-1', cacheTtlMs: 60_000 });
    const ref = { store: 'file', path: dir } as const;
    expect((await resolver.resolve(ref)).password).toBe('one');
    await writeFile(path.join(dir, 'password'), 'two');
    expect((await resolver.resolve(ref)).password).toBe('one');
    resolver.invalidate(ref);
    expect((await resolver.resolve(ref)).password).toBe('two');
  });
});
