/**
 * The ECS templates (deploy/ecs/): the stop timeout is enforced above the shutdown grace,
 * the task role trusts ECS for this account only, and no ARN hard-codes the partition.
 * The task role's policy itself is checked in policy-coverage.test.ts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCloudFormation, type CfnTemplate } from '../../helpers/cloudformation.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
const read = (rel: string): string => readFileSync(join(ROOT, rel), 'utf8');

/** Evaluates the rule functions the template uses, parameters given as strings (as CFN does). */
function evaluate(node: unknown, params: Record<string, string>): unknown {
  if (Array.isArray(node)) return node.map((n) => evaluate(n, params));
  if (node === null || typeof node !== 'object') return node;
  const [[fn, arg]] = Object.entries(node as Record<string, unknown>) as [[string, unknown]];
  const args = (): unknown[] => evaluate(arg, params) as unknown[];
  switch (fn) {
    case 'Ref': {
      const value = params[arg as string];
      if (value === undefined) throw new Error(`unknown parameter ${String(arg)}`);
      return value;
    }
    case 'Fn::Equals': {
      const [a, b] = args();
      return a === b;
    }
    case 'Fn::Contains': {
      const [list, value] = args() as [string[], string];
      return list.includes(value);
    }
    case 'Fn::Not':
      return !(args()[0] as boolean);
    case 'Fn::And':
      return args().every(Boolean);
    case 'Fn::Or':
      return args().some(Boolean);
    default:
      throw new Error(`rule function ${fn} is not evaluated by this test`);
  }
}

/** Whether CloudFormation accepts these parameter values (AllowedValues and Rules). */
function accepted(tpl: CfnTemplate, params: Record<string, string>): boolean {
  for (const rule of Object.values(tpl.Rules ?? {})) {
    if (rule.RuleCondition !== undefined && evaluate(rule.RuleCondition, params) !== true) continue;
    if (!rule.Assertions.every((a) => evaluate(a.Assert, params) === true)) return false;
  }
  return true;
}

describe('deploy/ecs/cloudformation.yaml', () => {
  const text = read('deploy/ecs/cloudformation.yaml');
  const tpl = parseCloudFormation(text);
  const allowed = (name: string): number[] => {
    const p = tpl.Parameters[name] as { AllowedValues?: number[] } | undefined;
    expect(p?.AllowedValues?.length ?? 0, `${name} has AllowedValues`).toBeGreaterThan(1);
    return p?.AllowedValues ?? [];
  };

  /** The parameters' defaults, with `overrides`. */
  const params = (overrides: Record<string, string>): Record<string, string> => ({
    ...Object.fromEntries(
      Object.entries(tpl.Parameters).map(([k, p]) => [k, String(p.Default ?? '')]),
    ),
    ...overrides,
  });

  it('refuses a connector token secret under latchkey/, which the task role may write', () => {
    const p = tpl.Parameters.ConnectorTokenSecretArn as { AllowedPattern?: string } | undefined;
    const re = new RegExp(p?.AllowedPattern ?? '^$');
    const arn = (name: string): string =>
      `arn:aws:secretsmanager:eu-west-1:123456789012:secret:${name}-AbCdEf`;
    expect(re.test(arn('latchkey-connector/acme-prod/token'))).toBe(true);
    expect(re.test(arn('latchkey/connector-token'))).toBe(false);
    expect(re.test('latchkey-connector/acme-prod/token')).toBe(false);
    const tf = read('deploy/ecs/terraform/variables.tf');
    expect(tf).toContain('!can(regex(":secret:latchkey/", var.connector_token_secret_arn))');
  });

  it('accepts a stop timeout only when it exceeds the shutdown grace (Rules)', () => {
    const graces = allowed('ShutdownGraceSeconds');
    const timeouts = allowed('StopTimeoutSeconds');
    expect(Math.max(...timeouts)).toBeLessThanOrEqual(120); // Fargate's maximum
    let combinations = 0;
    for (const grace of graces) {
      expect(
        timeouts.some((t) => t > grace),
        `a stop timeout above ${grace}`,
      ).toBe(true);
      for (const timeout of timeouts) {
        const values = params({
          ShutdownGraceSeconds: String(grace),
          StopTimeoutSeconds: String(timeout),
        });
        expect(accepted(tpl, values), `grace ${grace}, stop timeout ${timeout}`).toBe(
          timeout > grace,
        );
        combinations += 1;
      }
    }
    expect(combinations).toBeGreaterThan(50);
    // The defaults are accepted.
    expect(accepted(tpl, params({}))).toBe(true);
  });

  it('passes up to four extra environment variables, none the template sets itself', () => {
    // The agent's container (the init and metrics containers are behind !If).
    const container = (
      tpl.Resources.TaskDefinition?.Properties.ContainerDefinitions as {
        Name?: string;
        Environment: unknown[];
        Secrets: { Name: string }[];
      }[]
    ).find((c) => c.Name === 'latchkey');
    const environment = container?.Environment ?? [];
    const conditions = (tpl as unknown as { Conditions: Record<string, unknown> }).Conditions;
    const slots = Object.keys(tpl.Parameters)
      .map((name) => /^ExtraEnvironment(\d+)Name$/.exec(name)?.[1])
      .filter((n): n is string => n !== undefined);
    expect(slots).toEqual(['1', '2', '3', '4']);
    for (const i of slots) {
      expect(tpl.Parameters[`ExtraEnvironment${i}Value`]?.Default).toBe('');
      expect(conditions[`HasExtraEnvironment${i}`]).toEqual({
        'Fn::Not': [{ 'Fn::Equals': [{ Ref: `ExtraEnvironment${i}Name` }, ''] }],
      });
      expect(environment).toContainEqual({
        'Fn::If': [
          `HasExtraEnvironment${i}`,
          {
            Name: { Ref: `ExtraEnvironment${i}Name` },
            Value: { Ref: `ExtraEnvironment${i}Value` },
          },
          { Ref: 'AWS::NoValue' },
        ],
      });
    }
    // Every variable the template sets, plain or through !If, and its secrets.
    const setByTemplate = JSON.stringify(environment)
      .match(/"Name":"[A-Z_]+"/g)
      ?.map((m) => m.slice(8, -1))
      .concat((container?.Secrets ?? []).map((x) => x.Name));
    expect(setByTemplate).toContain('LATCHKEY_TRUSTED_KEYS');
    expect(setByTemplate).toContain('LATCHKEY_CONNECTOR_TOKEN');
    for (const i of slots) {
      expect(accepted(tpl, params({ [`ExtraEnvironment${i}Name`]: 'LATCHKEY_LOG_LEVEL' }))).toBe(
        true,
      );
      for (const name of setByTemplate ?? []) {
        expect(accepted(tpl, params({ [`ExtraEnvironment${i}Name`]: name })), name).toBe(false);
      }
    }
  });

  it('lets ECS assume the task and execution roles for this account only (aws:SourceAccount)', () => {
    for (const name of ['TaskRole', 'ExecutionRole']) {
      const role = tpl.Resources[name]?.Properties.AssumeRolePolicyDocument as {
        Statement: { Principal: unknown; Condition?: unknown }[];
      };
      expect(role.Statement, name).toHaveLength(1);
      expect(role.Statement[0], name).toMatchObject({
        Principal: { Service: 'ecs-tasks.amazonaws.com' },
        Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
      });
    }
  });

  it('writes no ARN with a fixed partition', () => {
    expect(text.match(/arn:aws:/g)).toBeNull();
    expect((tpl.Resources.ExecutionRole?.Properties.ManagedPolicyArns as unknown[])[0]).toEqual({
      'Fn::Sub':
        'arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy',
    });
  });
});

describe('deploy/ecs/terraform', () => {
  const main = read('deploy/ecs/terraform/main.tf');

  it('refuses a stop timeout not above the shutdown grace', () => {
    expect(main).toMatch(
      /precondition \{\s+condition\s+= var\.stop_timeout_seconds > var\.shutdown_grace_seconds/,
    );
  });

  it('lets ECS assume its roles for this account only (aws:SourceAccount)', () => {
    const assume = /data "aws_iam_policy_document" "ecs_tasks_assume" \{([\s\S]*?)\n\}/.exec(
      main,
    )?.[1];
    expect(assume).toMatch(
      /condition \{\s+test\s+= "StringEquals"\s+variable = "aws:SourceAccount"\s+values\s+= \[data\.aws_caller_identity\.current\.account_id\]/,
    );
    expect(main).toContain('data "aws_caller_identity" "current" {}');
  });

  it('writes no ARN with a fixed partition', () => {
    for (const file of ['main.tf', 'variables.tf', 'outputs.tf']) {
      expect(read(`deploy/ecs/terraform/${file}`).match(/arn:aws:/g), file).toBeNull();
    }
    expect(main).toContain('data "aws_partition" "current" {}');
  });
});

describe('deploy/ecs: CloudFormation and Terraform at parity', () => {
  const cfn = parseCloudFormation(read('deploy/ecs/cloudformation.yaml'));
  const variables = read('deploy/ecs/terraform/variables.tf');
  const tfVariables = [...variables.matchAll(/^variable "([a-z0-9_]+)"/gm)].map((m) => m[1]);

  it('has a Terraform variable for every CloudFormation parameter, and no other but tags', () => {
    // Where the names differ: the cluster (an ARN in Terraform) and the extra variables (a map).
    const renamed = (name: string): string =>
      name === 'ClusterName'
        ? 'cluster_arn'
        : /^ExtraEnvironment\d+(Name|Value)$/.test(name)
          ? 'extra_environment'
          : name.replace(/(?<=[a-z0-9])([A-Z])/g, '_$1').toLowerCase();
    const fromCfn = new Set(Object.keys(cfn.Parameters).map(renamed));
    expect(fromCfn).toContain('amp_workspace_arn');
    expect(fromCfn).toContain('config_efs_ca_bundle_path');
    expect(new Set(tfVariables.filter((v) => v !== 'tags'))).toEqual(fromCfn);
  });

  it('runs on the CPU architecture chosen, X86_64 by default (the released image is multi-arch)', () => {
    const p = cfn.Parameters.CpuArchitecture as { Default?: string; AllowedValues?: string[] };
    expect(p.Default).toBe('X86_64');
    expect(p.AllowedValues).toEqual(['X86_64', 'ARM64']);
    expect(
      (cfn.Resources.TaskDefinition?.Properties.RuntimePlatform as Record<string, unknown>)
        .CpuArchitecture,
    ).toEqual({ Ref: 'CpuArchitecture' });
    expect(read('deploy/ecs/terraform/main.tf')).toContain(
      'cpu_architecture        = var.cpu_architecture',
    );
    expect(variables).toMatch(
      /variable "cpu_architecture" \{[^}]*default\s+= "X86_64"\s+validation \{\s+condition\s+= contains\(\["X86_64", "ARM64"\], var\.cpu_architecture\)/,
    );
    expect(read('.github/workflows/release.yml')).toContain('platforms: linux/amd64,linux/arm64');
  });
});
