/**
 * ECS (deploy/ecs/): the agent's files (config with integrations, CA bundle) from SSM
 * parameters or EFS, and the metrics sidecar that remote-writes to Amazon Managed Service
 * for Prometheus. The CloudFormation template is rendered for given parameters (conditions,
 * `!If`, `!Sub`, `!Select`/`!Split`, `AWS::NoValue`), the init container's command is run
 * with node against a temporary directory and its files loaded by the agent's own config
 * loader, and the sidecar's scrape config is parsed and requested from the agent's own
 * HTTP server. The Terraform module must give the same script, config and statements.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../../../src/config/load.js';
import { AgentEvents } from '../../../src/events.js';
import { startHttpServer } from '../../../src/observability/http.js';
import { createMetrics } from '../../../src/observability/metrics.js';
import { parseCloudFormation, type CfnTemplate } from '../../helpers/cloudformation.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
const read = (rel: string): string => readFileSync(join(ROOT, rel), 'utf8');

const tpl = parseCloudFormation(read('deploy/ecs/cloudformation.yaml')) as CfnTemplate & {
  Conditions: Record<string, unknown>;
};

const NO_VALUE = Symbol('AWS::NoValue');
const PSEUDO: Record<string, string> = {
  'AWS::Partition': 'aws',
  'AWS::AccountId': '123456789012',
  'AWS::Region': 'eu-west-1',
  'AWS::URLSuffix': 'amazonaws.com',
};

const CONFIG_ARN = 'arn:aws:ssm:eu-west-1:123456789012:parameter/latchkey/acme-prod/config';
const CA_ARN = 'arn:aws:ssm:eu-west-1:123456789012:parameter/latchkey/acme-prod/ca-bundle';
const KEY_ARN = 'arn:aws:kms:eu-west-1:123456789012:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0';
const AMP_ARN =
  'arn:aws:aps:eu-west-1:123456789012:workspace/ws-0a1b2c3d-4e5f-6789-abcd-ef0123456789';

/** Parameter values: the defaults, the required ones, and `overrides`. */
function params(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    ...Object.fromEntries(
      Object.entries(tpl.Parameters).map(([k, p]) => [k, String(p.Default ?? '')]),
    ),
    Image: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/latchkey:0.1.0',
    ConnectorId: 'acme-prod',
    ControlPlaneUrl: 'wss://cp.example.com/connect',
    TrustedKeys: 'k1=oPg0q3CYaWUFPsvO4EZebkekdOZZIDctGgsWhxV8Q68',
    ...overrides,
  };
}

/** The template's resources as CloudFormation would create them with these parameters. */
function render(values: Record<string, string>): Record<string, { Properties: unknown }> {
  const vars: Record<string, string> = { ...PSEUDO, ...values };
  const conditions = new Map<string, boolean>();
  const condition = (name: string): boolean => {
    const known = conditions.get(name);
    if (known !== undefined) return known;
    const value = evaluate(tpl.Conditions[name]) as boolean;
    conditions.set(name, value);
    return value;
  };
  const sub = (text: string, local: Record<string, unknown> = {}): string =>
    text.replace(/\$\{([A-Za-z0-9:.]+)\}/g, (_m, name: string) => {
      const value = name in local ? local[name] : vars[name];
      if (typeof value !== 'string') throw new Error(`!Sub: unknown ${name}`);
      return value;
    });
  function evaluate(node: unknown): unknown {
    if (Array.isArray(node)) {
      return node.map((n) => evaluate(n)).filter((n) => n !== NO_VALUE);
    }
    if (node === null || typeof node !== 'object') return node;
    const obj = node as Record<string, unknown>;
    const keys = Object.keys(obj);
    const fn = keys.length === 1 ? keys[0] : undefined;
    const arg = fn === undefined ? undefined : obj[fn];
    switch (fn) {
      case 'Ref': {
        if (arg === 'AWS::NoValue') return NO_VALUE;
        const value = vars[arg as string];
        if (value !== undefined) return value;
        if (typeof arg === 'string' && arg in tpl.Resources) return `<${arg}>`;
        throw new Error(`!Ref ${String(arg)}`);
      }
      case 'Condition':
        return condition(arg as string);
      case 'Fn::If': {
        const [name, yes, no] = arg as [string, unknown, unknown];
        return evaluate(condition(name) ? yes : no);
      }
      case 'Fn::Equals': {
        const [a, b] = evaluate(arg) as [unknown, unknown];
        return a === b;
      }
      case 'Fn::Not':
        return !(evaluate(arg) as boolean[])[0];
      case 'Fn::And':
        return (evaluate(arg) as boolean[]).every(Boolean);
      case 'Fn::Or':
        return (evaluate(arg) as boolean[]).some(Boolean);
      case 'Fn::Sub': {
        if (typeof arg === 'string') return sub(arg);
        const [text, local] = arg as [string, Record<string, unknown>];
        return sub(text, evaluate(local) as Record<string, unknown>);
      }
      case 'Fn::Select': {
        const [index, list] = evaluate(arg) as [number | string, unknown[]];
        return list[Number(index)];
      }
      case 'Fn::Split': {
        const [sep, text] = evaluate(arg) as [string, string];
        return text.split(sep);
      }
      case 'Fn::GetAtt':
        return `<${(arg as string[]).join('.')}>`;
      default:
        return Object.fromEntries(
          Object.entries(obj)
            .map(([k, v]) => [k, evaluate(v)] as const)
            .filter(([, v]) => v !== NO_VALUE),
        );
    }
  }
  const out: Record<string, { Properties: unknown }> = {};
  for (const [name, res] of Object.entries(tpl.Resources)) {
    const cond = (res as { Condition?: string }).Condition;
    if (cond !== undefined && !condition(cond)) continue;
    out[name] = { Properties: evaluate(res.Properties) };
  }
  return out;
}

interface Container {
  Name: string;
  Image: string;
  Essential: boolean;
  User?: string;
  ReadonlyRootFilesystem?: boolean;
  EntryPoint?: string[];
  Command?: string[];
  MountPoints?: { SourceVolume: string; ContainerPath: string; ReadOnly: boolean }[];
  Environment?: { Name: string; Value: string }[];
  Secrets?: { Name: string; ValueFrom: string }[];
  DependsOn?: { ContainerName: string; Condition: string }[];
  PortMappings?: { ContainerPort: number }[];
}
interface TaskDefinition {
  Volumes: { Name: string; EFSVolumeConfiguration?: Record<string, unknown> }[];
  ContainerDefinitions: Container[];
}
interface PolicyStatement {
  Sid: string;
  Effect: string;
  Action: string | string[];
  Resource: string | string[];
  Condition?: unknown;
}

function taskDefinition(values: Record<string, string>): TaskDefinition {
  return render(values).TaskDefinition?.Properties as TaskDefinition;
}
function container(td: TaskDefinition, name: string): Container | undefined {
  return td.ContainerDefinitions.find((c) => c.Name === name);
}
function env(c: Container | undefined): Record<string, string> {
  return Object.fromEntries((c?.Environment ?? []).map((e) => [e.Name, e.Value]));
}
function executionStatements(values: Record<string, string>): Record<string, PolicyStatement[]> {
  const role = render(values).ExecutionRole?.Properties as {
    Policies: { PolicyName: string; PolicyDocument: { Statement: PolicyStatement[] } }[];
  };
  return Object.fromEntries(role.Policies.map((p) => [p.PolicyName, p.PolicyDocument.Statement]));
}

/** Evaluates the template's Rules: whether CloudFormation accepts these values. */
function accepted(values: Record<string, string>): boolean {
  const evaluate = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(evaluate);
    if (node === null || typeof node !== 'object') return node;
    const [[fn, arg]] = Object.entries(node as Record<string, unknown>) as [[string, unknown]];
    if (fn === 'Ref') return values[arg as string];
    const args = evaluate(arg) as unknown[];
    switch (fn) {
      case 'Fn::Equals':
        return args[0] === args[1];
      case 'Fn::Not':
        return !args[0];
      case 'Fn::And':
        return args.every(Boolean);
      case 'Fn::Or':
        return args.some(Boolean);
      case 'Fn::Contains':
        return (args[0] as unknown[]).includes(args[1]);
      default:
        throw new Error(`rule function ${fn}`);
    }
  };
  return Object.values(tpl.Rules ?? {}).every(
    (rule) =>
      (rule.RuleCondition !== undefined && evaluate(rule.RuleCondition) !== true) ||
      rule.Assertions.every((a) => evaluate(a.Assert) === true),
  );
}

const tmp = mkdtempSync(join(tmpdir(), 'latchkey-ecs-files-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Runs the init container's exact command, its directory replaced by `dir`. */
function runInit(
  c: Container,
  dir: string,
  environment: Record<string, string>,
): { status: number | null; stdout: string; stderr: string } {
  const argv = [...(c.EntryPoint ?? []), ...(c.Command ?? [])];
  const mount = c.MountPoints?.[0]?.ContainerPath;
  expect(argv[0]).toBe('node');
  expect(argv.at(-1)).toBe(mount); // it writes into its mount of the config volume
  const r = spawnSync(argv[0] ?? 'node', [...argv.slice(1, -1), dir], {
    env: { PATH: process.env.PATH ?? '', ...environment },
    encoding: 'utf8',
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const AGENT_ENV = {
  LATCHKEY_CONTROL_PLANE_URL: 'wss://cp.example.com/connect',
  LATCHKEY_CONNECTOR_ID: 'acme-prod',
  LATCHKEY_CONNECTOR_TOKEN: 'lk_tok_9f8e7d6c5b4a39281706f5e4d3c2b1a0',
  LATCHKEY_TRUSTED_KEYS: 'k1=oPg0q3CYaWUFPsvO4EZebkekdOZZIDctGgsWhxV8Q68',
};
const INTEGRATIONS = (JSON.parse(read('config.example.json')) as { integrations: unknown[] })
  .integrations;
const CA_PEM = read('test/fixtures/tls/ca.pem');

describe('deploy/ecs/cloudformation.yaml: files from SSM parameters', () => {
  const values = params({ ConfigParameterArn: CONFIG_ARN, CaBundleParameterArn: CA_ARN });
  const td = taskDefinition(values);
  const init = container(td, 'latchkey-config');
  const agent = container(td, 'latchkey');

  it('adds an init container from the agent image, non-root, read-only, that the agent waits for', () => {
    expect(init).toMatchObject({
      Image: values.Image,
      Essential: false,
      User: '10001:10001',
      ReadonlyRootFilesystem: true,
      Secrets: [
        { Name: 'LATCHKEY_INIT_CONFIG', ValueFrom: CONFIG_ARN },
        { Name: 'LATCHKEY_INIT_CA_BUNDLE', ValueFrom: CA_ARN },
      ],
    });
    expect(td.ContainerDefinitions.map((c) => c.Name)).toEqual(['latchkey-config', 'latchkey']);
    expect(agent?.DependsOn).toEqual([{ ContainerName: 'latchkey-config', Condition: 'SUCCESS' }]);
    expect(agent?.ReadonlyRootFilesystem).toBe(true);
    expect(agent?.User).toBe('10001:10001');
    // One task-storage volume: written by the init container, read-only for the agent.
    expect(td.Volumes.find((v) => v.Name === 'config')).toEqual({ Name: 'config' });
    expect(init?.MountPoints).toEqual([
      // The image's VOLUME (owned by 10001), so ECS creates the volume writable by 10001.
      { SourceVolume: 'config', ContainerPath: '/var/lib/latchkey', ReadOnly: false },
    ]);
    expect(read('Dockerfile')).toMatch(/VOLUME \["\/var\/lib\/latchkey"\]/);
    expect(agent?.MountPoints).toContainEqual({
      SourceVolume: 'config',
      ContainerPath: '/etc/latchkey',
      ReadOnly: true,
    });
  });

  it('the init command writes files the agent loads: config with integrations, CA bundle', () => {
    const dir = mkdtempSync(join(tmp, 'both-'));
    const config = JSON.stringify({ logLevel: 'debug', integrations: INTEGRATIONS });
    const r = runInit(init!, dir, {
      LATCHKEY_INIT_CONFIG: config,
      LATCHKEY_INIT_CA_BUNDLE: CA_PEM,
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    // The agent's paths, under its read-only mount, name the files the command wrote.
    const agentEnv = env(agent);
    expect(agentEnv.LATCHKEY_CONFIG_FILE).toBe('/etc/latchkey/config.json');
    expect(agentEnv.LATCHKEY_CA_BUNDLE_FILE).toBe('/etc/latchkey/ca-bundle.pem');
    const local = (p: string | undefined): string =>
      join(dir, (p ?? '').replace(/^\/etc\/latchkey\//, ''));
    expect(readdirSync(dir).sort()).toEqual(['ca-bundle.pem', 'config.json']);
    const loaded = loadConfig({
      env: {
        ...AGENT_ENV,
        LATCHKEY_CONFIG_FILE: local(agentEnv.LATCHKEY_CONFIG_FILE),
        LATCHKEY_CA_BUNDLE_FILE: local(agentEnv.LATCHKEY_CA_BUNDLE_FILE),
      },
    });
    expect(loaded.integrations.length).toBe(INTEGRATIONS.length);
    expect(loaded.integrations.map((i) => i.id)).toEqual(
      (INTEGRATIONS as { id: string }[]).map((i) => i.id),
    );
    expect(loaded.logLevel).toBe('debug');
    expect(loaded.caBundle).toBe(CA_PEM);
  });

  it('the init command fails, without echoing the content, on a config that is not JSON or a bundle without a certificate', () => {
    const dir = mkdtempSync(join(tmp, 'bad-'));
    const bad = runInit(init!, dir, { LATCHKEY_INIT_CONFIG: '{"integrations": [ secret-ish' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('LATCHKEY_INIT_CONFIG: not a valid config.json');
    expect(bad.stderr).not.toContain('secret-ish');
    const notPem = runInit(init!, dir, { LATCHKEY_INIT_CA_BUNDLE: 'not a certificate' });
    expect(notPem.status).toBe(1);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('sets LATCHKEY_CONFIG_FILE and LATCHKEY_CA_BUNDLE_FILE only for the files given', () => {
    const onlyCa = params({ CaBundleParameterArn: CA_ARN });
    const tdCa = taskDefinition(onlyCa);
    expect(env(container(tdCa, 'latchkey')).LATCHKEY_CA_BUNDLE_FILE).toBe(
      '/etc/latchkey/ca-bundle.pem',
    );
    expect(env(container(tdCa, 'latchkey'))).not.toHaveProperty('LATCHKEY_CONFIG_FILE');
    expect(container(tdCa, 'latchkey-config')?.Secrets).toEqual([
      { Name: 'LATCHKEY_INIT_CA_BUNDLE', ValueFrom: CA_ARN },
    ]);
    const dir = mkdtempSync(join(tmp, 'ca-'));
    expect(
      runInit(container(tdCa, 'latchkey-config')!, dir, { LATCHKEY_INIT_CA_BUNDLE: CA_PEM }).status,
    ).toBe(0);
    expect(readdirSync(dir)).toEqual(['ca-bundle.pem']);

    // Nothing given: no init container, no volume, no variable, no dependency.
    const none = taskDefinition(params());
    expect(none.ContainerDefinitions.map((c) => c.Name)).toEqual(['latchkey']);
    expect(none.Volumes.map((v) => v.Name)).toEqual(['state']);
    const plain = container(none, 'latchkey');
    expect(plain?.DependsOn).toBeUndefined();
    expect(plain?.MountPoints?.map((m) => m.ContainerPath)).toEqual(['/var/lib/latchkey']);
    expect(env(plain)).not.toHaveProperty('LATCHKEY_CONFIG_FILE');
    expect(env(plain)).not.toHaveProperty('LATCHKEY_CA_BUNDLE_FILE');
  });

  it('lets the execution role read exactly those parameters (and decrypt with the key, through SSM only)', () => {
    expect(executionStatements(values)['config-parameters']).toEqual([
      {
        Sid: 'ConfigParameters',
        Effect: 'Allow',
        Action: 'ssm:GetParameters',
        Resource: [CONFIG_ARN, CA_ARN],
      },
    ]);
    expect(
      executionStatements(
        params({ ConfigParameterArn: CONFIG_ARN, ConfigParameterKmsKeyArn: KEY_ARN }),
      )['config-parameters'],
    ).toEqual([
      {
        Sid: 'ConfigParameters',
        Effect: 'Allow',
        Action: 'ssm:GetParameters',
        Resource: [CONFIG_ARN],
      },
      {
        Sid: 'ConfigParametersKey',
        Effect: 'Allow',
        Action: 'kms:Decrypt',
        Resource: KEY_ARN,
        Condition: { StringEquals: { 'kms:ViaService': 'ssm.eu-west-1.amazonaws.com' } },
      },
    ]);
    expect(Object.keys(executionStatements(params()))).toEqual(['connector-token']);
  });
});

describe('deploy/ecs/cloudformation.yaml: files on EFS', () => {
  const efs = { ConfigEfsFileSystemId: 'fs-0123abcd', ConfigEfsConfigPath: 'acme/config.json' };

  it('mounts the file system read-only at /etc/latchkey and names only the files given', () => {
    const td = taskDefinition(params({ ...efs, ConfigEfsAccessPointId: 'fsap-0123abcd' }));
    expect(td.ContainerDefinitions.map((c) => c.Name)).toEqual(['latchkey']);
    expect(td.Volumes.find((v) => v.Name === 'config')).toEqual({
      Name: 'config',
      EFSVolumeConfiguration: {
        FilesystemId: 'fs-0123abcd',
        TransitEncryption: 'ENABLED',
        AuthorizationConfig: { AccessPointId: 'fsap-0123abcd', IAM: 'DISABLED' },
      },
    });
    const agent = container(td, 'latchkey');
    expect(agent?.MountPoints).toContainEqual({
      SourceVolume: 'config',
      ContainerPath: '/etc/latchkey',
      ReadOnly: true,
    });
    expect(env(agent).LATCHKEY_CONFIG_FILE).toBe('/etc/latchkey/acme/config.json');
    expect(env(agent)).not.toHaveProperty('LATCHKEY_CA_BUNDLE_FILE');
    expect(agent?.DependsOn).toBeUndefined();
    expect(Object.keys(executionStatements(params(efs)))).toEqual(['connector-token']);
  });

  it('accepts one source of files, complete (Rules and patterns)', () => {
    expect(accepted(params())).toBe(true);
    expect(accepted(params(efs))).toBe(true);
    expect(
      accepted(params({ ConfigParameterArn: CONFIG_ARN, ConfigParameterKmsKeyArn: KEY_ARN })),
    ).toBe(true);
    // Both sources at once, EFS without a file, file paths or access point without EFS,
    // a key without a parameter.
    expect(accepted(params({ ...efs, CaBundleParameterArn: CA_ARN }))).toBe(false);
    expect(accepted(params({ ConfigEfsFileSystemId: 'fs-0123abcd' }))).toBe(false);
    expect(accepted(params({ ConfigEfsCaBundlePath: 'ca.pem' }))).toBe(false);
    expect(accepted(params({ ConfigEfsAccessPointId: 'fsap-0123abcd' }))).toBe(false);
    expect(accepted(params({ ConfigParameterKmsKeyArn: KEY_ARN }))).toBe(false);
    const pattern = (name: string): RegExp =>
      new RegExp((tpl.Parameters[name] as { AllowedPattern?: string }).AllowedPattern ?? '^$');
    for (const name of ['ConfigEfsConfigPath', 'ConfigEfsCaBundlePath']) {
      expect(pattern(name).test('acme/config.json'), name).toBe(true);
      for (const bad of ['/etc/passwd', '../x', 'a/../b', './x', 'a//b']) {
        expect(pattern(name).test(bad), `${name} ${bad}`).toBe(false);
      }
    }
    expect(pattern('ConfigParameterArn').test(CONFIG_ARN)).toBe(true);
    expect(pattern('ConfigParameterArn').test('latchkey/acme-prod/config')).toBe(false);
    expect(pattern('AmpWorkspaceArn').test(AMP_ARN)).toBe(true);
  });
});

describe('deploy/ecs/cloudformation.yaml: metrics to Amazon Managed Service for Prometheus', () => {
  const values = params({ AmpWorkspaceArn: AMP_ARN, HttpsProxy: 'http://proxy:3128' });
  const td = taskDefinition(values);
  const sidecar = container(td, 'metrics-collector');
  const agent = container(td, 'latchkey');
  const collector = parseYaml(env(sidecar).AOT_CONFIG_CONTENT ?? '') as {
    receivers: {
      prometheus: {
        config: {
          scrape_configs: {
            job_name: string;
            metrics_path: string;
            static_configs: { targets: string[] }[];
          }[];
        };
      };
    };
    exporters: { prometheusremotewrite: { endpoint: string; auth: { authenticator: string } } };
    extensions: { sigv4auth: { region: string; service: string } };
    service: {
      extensions: string[];
      pipelines: { metrics: { receivers: string[]; exporters: string[] } };
    };
  };

  it('adds a non-essential, non-root, read-only collector sidecar only with a workspace', () => {
    expect(sidecar).toMatchObject({
      Image: values.MetricsCollectorImage,
      Essential: false,
      User: '10001:10001',
      ReadonlyRootFilesystem: true,
    });
    expect(env(sidecar).HTTPS_PROXY).toBe('http://proxy:3128');
    expect(container(taskDefinition(params()), 'metrics-collector')).toBeUndefined();
    expect(render(params()).MetricsRemoteWritePolicy).toBeUndefined();
  });

  it('scrapes the agent’s metrics port and path inside the task', async () => {
    const jobs = collector.receivers.prometheus.config.scrape_configs;
    expect(jobs).toHaveLength(1);
    const [job] = jobs;
    expect(job?.job_name).toBe('latchkey-acme-prod');
    expect(job?.static_configs).toEqual([{ targets: [expect.any(String)] }]);
    const target = job?.static_configs[0]?.targets[0] ?? '';
    const [host, port] = target.split(':');
    expect(host).toBe('127.0.0.1');
    // The port the agent listens on, as the agent's own config loader reads it.
    const agentPort = loadConfig({ env: { ...AGENT_ENV, ...env(agent) } }).httpPort;
    expect(Number(port)).toBe(agentPort);
    expect(agent?.PortMappings?.[0]?.ContainerPort).toBe(agentPort);
    // The path the agent's own HTTP server serves its own metrics on.
    const metrics = createMetrics(new AgentEvents());
    const server = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      registry: metrics.registry,
      readiness: () => ({ ready: true, reasons: [] }),
    });
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}${job?.metrics_path ?? ''}`);
      expect(res.status).toBe(200);
      // Prometheus text format, no units declared, every counter already ending in _total:
      // the remote-write exporter's name suffixes leave the names the dashboard uses.
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      const body = await res.text();
      expect(body).toMatch(/^latchkey_connected 0$/m);
      expect(body).not.toMatch(/^# UNIT/m);
      const counters = [...body.matchAll(/^# TYPE (latchkey_\w+) counter$/gm)].map((m) => m[1]);
      expect(counters).toContain('latchkey_commands_total');
      expect(counters.filter((c) => !c?.endsWith('_total'))).toEqual([]);
    } finally {
      await server.close();
      metrics.stop();
    }
  });

  it('remote-writes to the workspace with SigV4, and may do nothing else on AWS', () => {
    expect(collector.exporters.prometheusremotewrite.endpoint).toBe(
      'https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-0a1b2c3d-4e5f-6789-abcd-ef0123456789/api/v1/remote_write',
    );
    expect(collector.exporters.prometheusremotewrite.auth.authenticator).toBe('sigv4auth');
    expect(collector.extensions.sigv4auth).toEqual({ region: 'eu-west-1', service: 'aps' });
    expect(collector.service.extensions).toEqual(['sigv4auth']);
    expect(collector.service.pipelines.metrics.receivers).toEqual(['prometheus']);
    expect(collector.service.pipelines.metrics.exporters).toEqual(['prometheusremotewrite']);
    const policy = render(values).MetricsRemoteWritePolicy?.Properties as {
      RoleName: string;
      PolicyDocument: { Statement: PolicyStatement[] };
    };
    expect(policy.RoleName).toBe('<TaskRole>');
    expect(policy.PolicyDocument.Statement).toEqual([
      { Sid: 'MetricsRemoteWrite', Effect: 'Allow', Action: 'aps:RemoteWrite', Resource: AMP_ARN },
    ]);
  });
});

// ---------------------------------------------------------------------------------------
// Terraform: the same script, collector config and statements

const TF = 'deploy/ecs/terraform';
const main = read(`${TF}/main.tf`);

/** The HCL expression that starts at `from` (after `name =`): to the end of its line, brackets balanced. */
function hclExpression(text: string, from: number): string {
  let depth = 0;
  let quoted = false;
  for (let i = from; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '\\') i++;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') quoted = true;
    else if ('([{'.includes(ch ?? '')) depth++;
    else if (')]}'.includes(ch ?? '')) depth--;
    else if (ch === '\n' && depth === 0) return text.slice(from, i).trim();
  }
  return text.slice(from).trim();
}
/** The top-level block that starts with `header` (to its closing brace at column 0). */
function hclBlock(header: string): string {
  const start = main.indexOf(header);
  expect(start, header).toBeGreaterThanOrEqual(0);
  return main.slice(start, main.indexOf('\n}\n', start) + 2);
}
/** Every `name = expr` of a block, in order. */
function hclAttributes(block: string, name: string): string[] {
  return [...block.matchAll(new RegExp(`^\\s*${name}\\s+=`, 'gm'))].map((m) =>
    hclExpression(block, (m.index ?? 0) + m[0].length),
  );
}

/** The collector config of the CloudFormation template, for a workspace and connector. */
function cfnCollectorConfig(values: Record<string, string>): string {
  return env(container(taskDefinition(values), 'metrics-collector')).AOT_CONFIG_CONTENT ?? '';
}

describe('deploy/ecs/terraform: same files and metrics as the CloudFormation template', () => {
  it('runs the same init script (an HCL string with nothing to unescape)', () => {
    const [literal] = hclAttributes(hclBlock('locals {'), 'config_init_script');
    expect(literal).toMatch(/^"[^"\\]*"$/);
    expect(literal).not.toMatch(/[$%]\{/);
    const cfnInit = container(
      taskDefinition(params({ ConfigParameterArn: CONFIG_ARN })),
      'latchkey-config',
    );
    expect(literal?.slice(1, -1)).toBe(cfnInit?.Command?.[1]);
    expect(main).toContain(
      'command                = ["-e", local.config_init_script, "/var/lib/latchkey"]',
    );
    expect(main).toContain('entryPoint             = ["node"]');
  });

  it('gives the collector the same config (metrics-collector.yaml.tftpl)', () => {
    const template = read(`${TF}/metrics-collector.yaml.tftpl`);
    expect(new Set([...template.matchAll(/[$%]\{[^}]*\}/g)].map((m) => m[0]))).toEqual(
      new Set(['${workspace_region}', '${url_suffix}', '${workspace_id}', '${connector_id}']),
    );
    const rendered = template
      .replaceAll('${workspace_region}', 'eu-west-1')
      .replaceAll('${url_suffix}', 'amazonaws.com')
      .replaceAll('${workspace_id}', 'ws-0a1b2c3d-4e5f-6789-abcd-ef0123456789')
      .replaceAll('${connector_id}', 'acme-prod');
    expect(rendered).toBe(cfnCollectorConfig(params({ AmpWorkspaceArn: AMP_ARN })));
    expect(main).toMatch(
      /templatefile\("\$\{path\.module\}\/metrics-collector\.yaml\.tftpl", \{\s+connector_id\s+= var\.connector_id\s+workspace_region = split\(":", var\.amp_workspace_arn\)\[3\]\s+workspace_id\s+= split\("\/", var\.amp_workspace_arn\)\[1\]\s+url_suffix\s+= data\.aws_partition\.current\.dns_suffix/,
    );
  });
});

/**
 * The module evaluated by the real terraform, offline: its variables, its locals, the
 * container definitions, the new policies and the preconditions as outputs of a scratch
 * module without resources (data sources replaced by fixed values), applied to a local state.
 */
const hasTerraform = spawnSync('terraform', ['version'], { encoding: 'utf8' }).status === 0;
if (!hasTerraform) {
  process.stderr.write(
    '\nNOT RUN: the Terraform module evaluated by terraform (not installed here; ' +
      'https://developer.hashicorp.com/terraform/install).\n\n',
  );
}
describe.runIf(hasTerraform)('deploy/ecs/terraform evaluated by terraform', () => {
  const scratch = mkdtempSync(join(tmp, 'tf-'));
  const fixed = (text: string): string =>
    text
      .replaceAll('data.aws_partition.current.dns_suffix', '"amazonaws.com"')
      .replaceAll('data.aws_partition.current.partition', '"aws"')
      .replaceAll('data.aws_region.current.name', '"eu-west-1"')
      .replaceAll('data.aws_caller_identity.current.account_id', '"123456789012"')
      .replaceAll('aws_cloudwatch_log_group.this.name', '"/ecs/latchkey/acme-prod"');
  const policyOutput = (resource: string): string => {
    const block = hclBlock(`resource "aws_iam_role_policy" "${resource}" {`);
    const [count] = hclAttributes(block, 'count');
    const [policy] = hclAttributes(block, 'policy');
    return `(${count ?? '1'}) == 1 ? jsondecode(${policy ?? 'null'}) : null`;
  };
  const preconditions = hclAttributes(
    hclBlock('resource "terraform_data" "grace_check" {'),
    'condition',
  );
  const outputs: Record<string, string> = {
    containers: `jsondecode(${hclAttributes(hclBlock('resource "aws_ecs_task_definition" "this" {'), 'container_definitions')[0] ?? 'null'})`,
    execution_config: policyOutput('execution_config'),
    task_metrics: policyOutput('task_metrics'),
    preconditions: `[${preconditions.join(', ')}]`,
  };
  writeFileSync(join(scratch, 'variables.tf'), read(`${TF}/variables.tf`));
  writeFileSync(join(scratch, 'locals.tf'), fixed(hclBlock('locals {')));
  writeFileSync(
    join(scratch, 'metrics-collector.yaml.tftpl'),
    read(`${TF}/metrics-collector.yaml.tftpl`),
  );
  writeFileSync(
    join(scratch, 'outputs.tf'),
    Object.entries(outputs)
      .map(
        ([name, value]) =>
          `output "${name}" {\n  value     = ${fixed(value)}\n  sensitive = true\n}\n`,
      )
      .join('\n'),
  );
  writeFileSync(join(scratch, 'cli.tfrc'), '');
  const tfEnv = {
    ...process.env,
    TF_DATA_DIR: join(scratch, '.terraform'),
    TF_CLI_CONFIG_FILE: join(scratch, 'cli.tfrc'),
    TF_IN_AUTOMATION: '1',
  };
  let run = 0;
  function evaluate(vars: Record<string, unknown>): {
    containers: Record<string, unknown>[];
    execution_config: { Statement: PolicyStatement[] } | null;
    task_metrics: { Statement: PolicyStatement[] } | null;
    preconditions: boolean[];
  } {
    run += 1;
    const varFile = join(scratch, `run-${run}.tfvars.json`);
    const state = join(scratch, `run-${run}.tfstate`);
    writeFileSync(
      varFile,
      JSON.stringify({
        image: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/latchkey:0.1.0',
        cluster_arn: 'arn:aws:ecs:eu-west-1:123456789012:cluster/prod',
        vpc_id: 'vpc-0123',
        subnet_ids: ['subnet-0123'],
        control_plane_url: 'wss://cp.example.com/connect',
        connector_id: 'acme-prod',
        connector_token_secret_arn:
          'arn:aws:secretsmanager:eu-west-1:123456789012:secret:latchkey-connector/acme-prod/token-AbCdEf',
        trusted_keys: { k1: 'oPg0q3CYaWUFPsvO4EZebkekdOZZIDctGgsWhxV8Q68' },
        ...vars,
      }),
    );
    const apply = spawnSync(
      'terraform',
      [
        'apply',
        '-auto-approve',
        '-input=false',
        '-no-color',
        `-var-file=${varFile}`,
        `-state=${state}`,
      ],
      { cwd: scratch, env: tfEnv, encoding: 'utf8' },
    );
    expect(apply.status, apply.stderr).toBe(0);
    const out = spawnSync('terraform', ['output', '-json', `-state=${state}`], {
      cwd: scratch,
      env: tfEnv,
      encoding: 'utf8',
    });
    const values = JSON.parse(out.stdout) as Record<string, { value: unknown }>;
    // A null output is left out of `terraform output`.
    return Object.fromEntries(
      Object.keys(outputs).map((k) => [k, values[k]?.value ?? null]),
    ) as ReturnType<typeof evaluate>;
  }
  const tfContainer = (
    r: ReturnType<typeof evaluate>,
    name: string,
  ): Record<string, unknown> | undefined => r.containers.find((c) => c.name === name);
  const tfEnvOf = (c: Record<string, unknown> | undefined): Record<string, string> =>
    Object.fromEntries(
      ((c?.environment ?? []) as { name: string; value: string }[]).map((e) => [e.name, e.value]),
    );

  it('initialises offline (no provider in the scratch module)', () => {
    const init = spawnSync('terraform', ['init', '-input=false', '-no-color'], {
      cwd: scratch,
      env: tfEnv,
      encoding: 'utf8',
    });
    expect(init.status, init.stderr).toBe(0);
    expect(preconditions.length).toBe(6);
  });

  it('files from SSM parameters: the init container, the dependency, the variables, exactly the read', () => {
    const r = evaluate({
      config_parameter_arn: CONFIG_ARN,
      ca_bundle_parameter_arn: CA_ARN,
      config_parameter_kms_key_arn: KEY_ARN,
    });
    expect(r.preconditions.every(Boolean)).toBe(true);
    const cfnTd = taskDefinition(
      params({
        ConfigParameterArn: CONFIG_ARN,
        CaBundleParameterArn: CA_ARN,
        ConfigParameterKmsKeyArn: KEY_ARN,
      }),
    );
    const cfnInit = container(cfnTd, 'latchkey-config');
    expect(r.containers.map((c) => c.name)).toEqual(cfnTd.ContainerDefinitions.map((c) => c.Name));
    expect(tfContainer(r, 'latchkey-config')).toMatchObject({
      essential: false,
      user: '10001:10001',
      readonlyRootFilesystem: true,
      entryPoint: cfnInit?.EntryPoint,
      command: cfnInit?.Command,
      mountPoints: [
        { sourceVolume: 'config', containerPath: '/var/lib/latchkey', readOnly: false },
      ],
      secrets: [
        { name: 'LATCHKEY_INIT_CONFIG', valueFrom: CONFIG_ARN },
        { name: 'LATCHKEY_INIT_CA_BUNDLE', valueFrom: CA_ARN },
      ],
    });
    const agent = tfContainer(r, 'latchkey');
    expect(agent?.dependsOn).toEqual([{ containerName: 'latchkey-config', condition: 'SUCCESS' }]);
    expect(agent?.mountPoints).toContainEqual({
      sourceVolume: 'config',
      containerPath: '/etc/latchkey',
      readOnly: true,
    });
    const cfnAgentEnv = env(container(cfnTd, 'latchkey'));
    expect(tfEnvOf(agent).LATCHKEY_CONFIG_FILE).toBe(cfnAgentEnv.LATCHKEY_CONFIG_FILE);
    expect(tfEnvOf(agent).LATCHKEY_CA_BUNDLE_FILE).toBe(cfnAgentEnv.LATCHKEY_CA_BUNDLE_FILE);
    // The same statements as CloudFormation's execution role.
    expect(r.execution_config?.Statement).toEqual(
      executionStatements(
        params({
          ConfigParameterArn: CONFIG_ARN,
          CaBundleParameterArn: CA_ARN,
          ConfigParameterKmsKeyArn: KEY_ARN,
        }),
      )['config-parameters'],
    );
    expect(r.task_metrics).toBeNull();
  });

  it('files on EFS, metrics to AMP, and nothing given: as CloudFormation', () => {
    const efs = evaluate({
      config_efs_file_system_id: 'fs-0123abcd',
      config_efs_ca_bundle_path: 'ca.pem',
    });
    expect(efs.preconditions.every(Boolean)).toBe(true);
    expect(efs.containers.map((c) => c.name)).toEqual(['latchkey']);
    expect(tfEnvOf(tfContainer(efs, 'latchkey')).LATCHKEY_CA_BUNDLE_FILE).toBe(
      '/etc/latchkey/ca.pem',
    );
    expect(tfEnvOf(tfContainer(efs, 'latchkey'))).not.toHaveProperty('LATCHKEY_CONFIG_FILE');
    expect(efs.execution_config).toBeNull();

    const amp = evaluate({ amp_workspace_arn: AMP_ARN, https_proxy: 'http://proxy:3128' });
    const sidecar = tfContainer(amp, 'metrics-collector');
    const cfnSidecar = container(
      taskDefinition(params({ AmpWorkspaceArn: AMP_ARN, HttpsProxy: 'http://proxy:3128' })),
      'metrics-collector',
    );
    expect(sidecar).toMatchObject({
      essential: false,
      user: '10001:10001',
      readonlyRootFilesystem: true,
    });
    expect(tfEnvOf(sidecar)).toEqual(env(cfnSidecar));
    expect(amp.task_metrics?.Statement).toEqual([
      { Sid: 'MetricsRemoteWrite', Effect: 'Allow', Action: 'aps:RemoteWrite', Resource: AMP_ARN },
    ]);

    const none = evaluate({});
    expect(none.containers.map((c) => c.name)).toEqual(['latchkey']);
    expect(tfContainer(none, 'latchkey')?.dependsOn).toBeNull();
    expect(tfEnvOf(tfContainer(none, 'latchkey'))).not.toHaveProperty('LATCHKEY_CONFIG_FILE');
    expect([none.execution_config, none.task_metrics]).toEqual([null, null]);
  });

  it('refuses what the CloudFormation Rules refuse (preconditions)', () => {
    const refused = (vars: Record<string, unknown>): boolean =>
      !evaluate(vars).preconditions.every(Boolean);
    expect(refused({})).toBe(false);
    expect(
      refused({
        config_efs_file_system_id: 'fs-0123abcd',
        ca_bundle_parameter_arn: CA_ARN,
        config_efs_config_path: 'c.json',
      }),
    ).toBe(true);
    expect(refused({ config_efs_file_system_id: 'fs-0123abcd' })).toBe(true);
    expect(refused({ config_efs_config_path: 'c.json' })).toBe(true);
    expect(refused({ config_efs_access_point_id: 'fsap-0123abcd' })).toBe(true);
    expect(refused({ config_parameter_kms_key_arn: KEY_ARN })).toBe(true);
    // extra_environment may not override a variable the module sets (CloudFormation's Rules).
    expect(refused({ extra_environment: { LATCHKEY_LOG_LEVEL: 'debug' } })).toBe(false);
    for (const name of [
      'LATCHKEY_CONFIG_FILE',
      'LATCHKEY_TRUSTED_KEYS',
      'LATCHKEY_CONNECTOR_TOKEN',
    ]) {
      expect(refused({ extra_environment: { [name]: 'x' } }), name).toBe(true);
    }
  });
});
