/**
 * Writes docs/configuration.md from the configuration schema (src/config/schema.ts),
 * formatted with the project's Prettier settings so that `prettier --check` agrees.
 *
 * Usage: npx tsx scripts/gen-config-docs.ts [--check]
 * With --check, exits 1 when the committed file differs instead of writing it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as prettier from 'prettier';
import { renderConfigDocs } from '../src/config/docs.js';

export const CONFIG_DOCS_PATH = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  'docs',
  'configuration.md',
);

/** The exact text docs/configuration.md must have. */
export async function generateConfigDocs(): Promise<string> {
  const options = (await prettier.resolveConfig(CONFIG_DOCS_PATH)) ?? {};
  return prettier.format(renderConfigDocs(), { ...options, parser: 'markdown' });
}

async function main(): Promise<void> {
  const text = await generateConfigDocs();
  if (process.argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(CONFIG_DOCS_PATH, 'utf8');
    } catch {
      // missing counts as different
    }
    if (current !== text) {
      console.error('docs/configuration.md is out of date: run npx tsx scripts/gen-config-docs.ts');
      process.exit(1);
    }
    console.log('docs/configuration.md is up to date');
  } else {
    writeFileSync(CONFIG_DOCS_PATH, text);
    console.log(`wrote ${CONFIG_DOCS_PATH}`);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
