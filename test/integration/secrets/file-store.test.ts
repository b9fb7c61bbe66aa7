import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readSecretDirectory } from '../../../src/secrets/file.js';
import { createSecretResolver } from '../../../src/secrets/index.js';
import type { AwsClientFactory } from '../../../src/aws/types.js';
import { errorOf } from '../../helpers/errors.js';

const PASSWORD = 'file-Pa55word';
let root: string;

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
    const resolver = createSecretResolver({
      aws,
      defaultRegion: 'eu-west-1',
      cacheTtlMs: 60_000,
      fileRoots: [root],
    });
    const ref = { store: 'file', path: dir } as const;
    expect((await resolver.resolve(ref)).password).toBe('one');
    await writeFile(path.join(dir, 'password'), 'two');
    expect((await resolver.resolve(ref)).password).toBe('one');
    resolver.invalidate(ref);
    expect((await resolver.resolve(ref)).password).toBe('two');
  });
});

describe('file store confinement (real paths)', () => {
  const aws: AwsClientFactory = {
    client: () => {
      throw new Error('AWS is not used by the file store');
    },
  };
  let roots: string;
  let allowed: string;
  let outside: string;

  beforeAll(async () => {
    roots = path.join(root, 'confinement');
    allowed = path.join(roots, 'allowed');
    outside = path.join(roots, 'outside');
    await mkdir(path.join(allowed, 'db'), { recursive: true });
    await writeFile(path.join(allowed, 'db', 'username'), 'svc');
    await writeFile(path.join(allowed, 'db', 'password'), PASSWORD);
    await mkdir(path.join(outside, 'prod'), { recursive: true });
    await writeFile(path.join(outside, 'prod', 'username'), 'prod');
    await writeFile(path.join(outside, 'prod', 'password'), 'Outside-Pa55');
  });

  const resolverFor = (fileRoots?: string[]) =>
    createSecretResolver({
      aws,
      defaultRegion: 'eu-west-1',
      cacheTtlMs: 0,
      ...(fileRoots ? { fileRoots } : {}),
    });

  it('reads a directory under a configured root', async () => {
    const r = resolverFor([allowed]);
    expect((await r.resolve({ store: 'file', path: path.join(allowed, 'db') })).username).toBe(
      'svc',
    );
  });

  it('refuses a path outside the roots, also through .. (E_GUARDRAIL)', async () => {
    const r = resolverFor([allowed]);
    for (const p of [path.join(outside, 'prod'), `${allowed}/../outside/prod`]) {
      const err = await errorOf(r.resolve({ store: 'file', path: p }));
      expect(err.code).toBe('E_GUARDRAIL');
      expect(err.message).toMatch(/outside the allowed secret directories/);
      expect(err.message).not.toContain('Outside-Pa55');
    }
  });

  it('refuses a directory that is a symbolic link leading out of the root', async () => {
    const link = path.join(allowed, 'escape');
    await symlink(path.join(outside, 'prod'), link);
    const err = await errorOf(resolverFor([allowed]).resolve({ store: 'file', path: link }));
    expect(err.code).toBe('E_GUARDRAIL');
  });

  it('refuses a field file that is a symbolic link leading out of the root', async () => {
    const dir = path.join(allowed, 'sneaky');
    await mkdir(dir);
    await writeFile(path.join(dir, 'username'), 'svc');
    await symlink(path.join(outside, 'prod', 'password'), path.join(dir, 'password'));
    const err = await errorOf(resolverFor([allowed]).resolve({ store: 'file', path: dir }));
    expect(err.code).toBe('E_GUARDRAIL');
    expect(err.message).not.toContain('Outside-Pa55');
  });

  it('accepts a root that is itself a symbolic link (e.g. /var/run → /run)', async () => {
    const linkedRoot = path.join(roots, 'linked-root');
    await symlink(allowed, linkedRoot);
    const r = resolverFor([linkedRoot]);
    expect((await r.resolve({ store: 'file', path: path.join(allowed, 'db') })).username).toBe(
      'svc',
    );
    expect((await r.resolve({ store: 'file', path: path.join(linkedRoot, 'db') })).username).toBe(
      'svc',
    );
  });

  it('without fileRoots the resolver confines to the default roots (not a temporary directory)', async () => {
    const err = await errorOf(
      resolverFor().resolve({ store: 'file', path: path.join(allowed, 'db') }),
    );
    expect(err.code).toBe('E_GUARDRAIL');
  });
});
