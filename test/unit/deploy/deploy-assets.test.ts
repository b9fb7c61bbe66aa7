/**
 * Static checks of the deployment assets (deploy/, Dockerfile): the IAM policy, the
 * Grafana dashboard and alert rules, and the security settings of the image, the Helm
 * chart and the ECS templates. YAML is checked line by line (no YAML parser is a
 * dependency of the project).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ID_PATTERN } from '../../../src/config/schema.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const read = (rel: string): string => readFileSync(path.join(ROOT, rel), 'utf8');

/**
 * The metric names the agent exports. Mirrors src/observability/metrics.ts (checked
 * below): change both together.
 */
const METRICS = [
  'latchkey_commands_total',
  'latchkey_command_duration_seconds',
  'latchkey_queue_depth',
  'latchkey_queue_running',
  'latchkey_queue_wait_seconds',
  'latchkey_connected',
  'latchkey_reconnects_total',
  'latchkey_rejections_total',
  'latchkey_refusal_logs_suppressed_total',
  'latchkey_duplicates_total',
  'latchkey_outbox_size',
  'latchkey_result_chunks_sent_total',
  'latchkey_results_too_large_total',
  'latchkey_state_enabled',
  'latchkey_state_journal_bytes',
  'latchkey_state_journal_records',
  'latchkey_state_fsync_seconds',
  'latchkey_state_write_failures_total',
  'latchkey_state_compactions_total',
  'latchkey_link_reading_held',
  'latchkey_link_read_holds_total',
  'latchkey_link_send_held',
  'latchkey_link_send_holds_total',
  'latchkey_sweeps_total',
  'latchkey_sweep_revoked_total',
  'latchkey_sweep_errors_total',
  'latchkey_aws_calls_total',
  'latchkey_event_listener_errors_total',
] as const;
const HISTOGRAMS = new Set([
  'latchkey_command_duration_seconds',
  'latchkey_queue_wait_seconds',
  'latchkey_state_fsync_seconds',
]);
const KNOWN = new Set<string>(METRICS);

/** Metric names referenced in a text, histogram series (`_bucket`, `_sum`, `_count`) folded. */
function metricNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const match of text.matchAll(/\blatchkey_[a-z0-9_]+/g)) {
    const name = match[0];
    const base = name.replace(/_(bucket|sum|count)$/, '');
    names.add(base !== name && HISTOGRAMS.has(base) ? base : name);
  }
  return names;
}

const StatementSchema = z.object({
  Sid: z.string().regex(/^[A-Za-z0-9]+$/),
  Effect: z.enum(['Allow', 'Deny']),
  Action: z.union([z.string(), z.array(z.string()).min(1)]),
  Resource: z.union([z.string(), z.array(z.string()).min(1)]),
  Condition: z.record(z.string(), z.record(z.string(), z.unknown())).optional(),
});
const PolicySchema = z.object({
  Version: z.literal('2012-10-17'),
  Statement: z.array(StatementSchema).min(1),
});
const list = (v: string | string[]): string[] => (Array.isArray(v) ? v : [v]);

describe('deploy/iam/connector-policy.json', () => {
  const policy = PolicySchema.parse(JSON.parse(read('deploy/iam/connector-policy.json')));
  const bySid = new Map(policy.Statement.map((s) => [s.Sid, s]));

  it('has one statement per feature, every Sid unique', () => {
    const sids = policy.Statement.map((s) => s.Sid);
    expect(new Set(sids).size).toBe(sids.length);
    for (const sid of [
      'SecretsRead',
      'SecretsRotate',
      'RdsIamConnect',
      'RedshiftCredentials',
      'IamGrants',
      'SsmSessions',
      'LambdaInvokeTagged',
      'Discovery',
      'AssumeConnectorRoles',
    ]) {
      expect(bySid.has(sid), sid).toBe(true);
    }
  });

  it('never allows a wildcard action, nor a write on every resource', () => {
    for (const s of policy.Statement) {
      for (const action of list(s.Action)) {
        expect(action, s.Sid).toMatch(/^[a-z0-9-]+:[A-Za-z]+$/);
      }
      if (s.Effect === 'Allow' && list(s.Resource).includes('*')) {
        const writes = list(s.Action).filter((a) =>
          /:(Put|Delete|Update|Create|Attach|Invoke|AssumeRole)/.test(a),
        );
        expect(writes, s.Sid).toEqual([]);
      }
    }
  });

  it('reads secrets by their latchkey-connector-read tag, under any name (binding by tag)', () => {
    expect(bySid.get('SecretsRead')?.Condition).toEqual({
      StringEquals: { 'secretsmanager:ResourceTag/latchkey-connector-read': 'true' },
    });
    expect(list(bySid.get('SecretsRead')?.Resource ?? [])).toEqual([
      'arn:aws:secretsmanager:*:*:secret:*',
    ]);
    // The CloudFormation task role: the same statement with the tag prefix (policy-coverage.test.ts).
    expect(read('deploy/ecs/cloudformation.yaml')).toContain(
      '"secretsmanager:ResourceTag/${TagPrefix}-connector-read": "true"',
    );
  });

  it('scopes Lambda invocation by tag and role assumption to latchkey-* roles', () => {
    expect(bySid.get('LambdaInvokeTagged')?.Condition).toEqual({
      StringEquals: { 'aws:ResourceTag/latchkey-connector-access': 'true' },
    });
    for (const arn of list(bySid.get('AssumeConnectorRoles')?.Resource ?? [])) {
      expect(arn).toMatch(/:role\/latchkey-\*$/);
    }
  });

  // The CloudFormation and Terraform task roles are compared with this file statement by
  // statement in policy-coverage.test.ts.
});

describe('deploy/grafana', () => {
  it('the metric list mirrors src/observability/metrics.ts', () => {
    const declared = new Set(
      [...read('src/observability/metrics.ts').matchAll(/name: '(latchkey_[a-z0-9_]+)'/g)].map(
        (m) => m[1],
      ),
    );
    expect(declared).toEqual(KNOWN);
  });

  const DashboardSchema = z.object({
    uid: z.string().min(1),
    title: z.string().min(1),
    panels: z.array(
      z.object({
        id: z.number().int(),
        type: z.string(),
        title: z.string().min(1),
        targets: z.array(z.object({ expr: z.string().min(1), refId: z.string() })).optional(),
      }),
    ),
  });
  const text = read('deploy/grafana/dashboard.json');
  const dashboard = DashboardSchema.parse(JSON.parse(text));

  it('the dashboard uses only exported metrics, and shows every one', () => {
    const used = metricNames(text);
    for (const name of used) expect(KNOWN.has(name), name).toBe(true);
    for (const name of KNOWN) expect(used.has(name), `${name} not on the dashboard`).toBe(true);
  });

  it('dashboard panels have unique ids and every graph has a query', () => {
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels.filter((x) => x.type !== 'row')) {
      expect(p.targets?.length ?? 0, p.title).toBeGreaterThan(0);
    }
  });

  it('alert rules use only exported metrics, have unique names and a severity each', () => {
    const alerts = read('deploy/grafana/alerts.yaml');
    for (const name of metricNames(alerts)) expect(KNOWN.has(name), name).toBe(true);
    const names = [...alerts.matchAll(/^\s*- alert: (\S+)\s*$/gm)].map((m) => m[1]);
    expect(names.length).toBeGreaterThan(5);
    expect(new Set(names).size).toBe(names.length);
    expect([...alerts.matchAll(/^\s*severity: (critical|warning)\s*$/gm)].length).toBe(
      names.length,
    );
    expect([...alerts.matchAll(/^\s*expr: /gm)].length).toBe(names.length);
  });
});

describe('image and orchestrator templates', () => {
  it('the Dockerfile builds in stages and runs as 10001 with a health check', () => {
    const dockerfile = read('Dockerfile');
    expect(dockerfile).toMatch(/^FROM \$\{NODE_IMAGE\} AS build$/m);
    expect(dockerfile).toMatch(/^FROM \$\{NODE_IMAGE\} AS runtime$/m);
    expect(dockerfile).toContain('npm ci --omit=dev');
    expect(dockerfile).toMatch(/^USER 10001:10001$/m);
    expect(dockerfile).toMatch(/^HEALTHCHECK .*\n.*\/healthz/m);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["node", "dist\/src\/main\.js", "run"\]$/m);
  });

  it('every template gives the agent a writable state directory at /var/lib/latchkey', () => {
    const dockerfile = read('Dockerfile');
    expect(dockerfile).toMatch(/LATCHKEY_STATE_DIR=\/var\/lib\/latchkey/);
    expect(dockerfile).toMatch(/chown 10001:10001 \/var\/lib\/latchkey/);
    expect(dockerfile).toMatch(/^VOLUME \["\/var\/lib\/latchkey"\]$/m);

    const values = read('deploy/helm/latchkey/values.yaml');
    expect(values).toMatch(
      /^stateDir:\n {2}enabled: true\n {2}sizeLimit: \S+\n {2}existingClaim: ''$/m,
    );
    const deployment = read('deploy/helm/latchkey/templates/deployment.yaml');
    expect(deployment).toMatch(/- name: state\n\s+mountPath: \/var\/lib\/latchkey/);
    expect(deployment).toMatch(
      /persistentVolumeClaim:\n\s+claimName: \{\{ \.Values\.stateDir\.existingClaim \}\}/,
    );
    expect(deployment).toMatch(/emptyDir:\n\s+sizeLimit: \{\{ \.Values\.stateDir\.sizeLimit \}\}/);
    expect(deployment).toContain(
      '"LATCHKEY_STATE_DIR" (ternary "/var/lib/latchkey" "off" .Values.stateDir.enabled)',
    );

    const cfn = read('deploy/ecs/cloudformation.yaml');
    for (const line of [
      '- { Name: LATCHKEY_STATE_DIR, Value: /var/lib/latchkey }',
      '- { SourceVolume: state, ContainerPath: /var/lib/latchkey, ReadOnly: false }',
      'FilesystemId: !Ref StateEfsFileSystemId',
      'TransitEncryption: ENABLED',
      "StateOnEfs: !Not [!Equals [!Ref StateEfsFileSystemId, '']]",
    ]) {
      expect(cfn, line).toContain(line);
    }
    expect(cfn).toMatch(/Volumes:\n\s+- Name: state\n/);

    const tf = read('deploy/ecs/terraform/main.tf');
    for (const line of [
      'LATCHKEY_STATE_DIR         = "/var/lib/latchkey"',
      '[{ sourceVolume = "state", containerPath = "/var/lib/latchkey", readOnly = false }],',
      'name = "state"',
      'file_system_id     = var.state_efs_file_system_id',
      'transit_encryption = "ENABLED"',
    ]) {
      expect(tf, line).toContain(line);
    }
    const vars = read('deploy/ecs/terraform/variables.tf');
    expect(vars).toMatch(/variable "state_efs_file_system_id" \{[^}]*default\s+= null/);
  });

  it('the Helm deployment is locked down and probes /healthz and /readyz', () => {
    const deployment = read('deploy/helm/latchkey/templates/deployment.yaml');
    for (const line of [
      'path: /healthz',
      'path: /readyz',
      'secretKeyRef:',
      'terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}',
      '{{- toYaml .Values.podSecurityContext | nindent 8 }}',
      '{{- toYaml .Values.containerSecurityContext | nindent 12 }}',
    ]) {
      expect(deployment, line).toContain(line);
    }
    // The security contexts are values (overridable, e.g. for OpenShift); their defaults
    // are the restricted ones.
    const values = z
      .object({
        podSecurityContext: z.record(z.string(), z.unknown()),
        containerSecurityContext: z.record(z.string(), z.unknown()),
      })
      .parse(parseYaml(read('deploy/helm/latchkey/values.yaml')));
    expect(values.podSecurityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 10001,
      fsGroup: 10001,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(values.containerSecurityContext).toMatchObject({
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ['ALL'] },
    });
    expect(read('deploy/helm/latchkey/templates/serviceaccount.yaml')).toContain(
      'eks.amazonaws.com/role-arn',
    );
    expect(read('deploy/helm/latchkey/templates/networkpolicy.yaml')).toMatch(
      /policyTypes:\n\s+- Ingress\n\s+- Egress/,
    );
  });

  it('Helm defaults give Kubernetes more time than the agent’s shutdown grace', () => {
    const values = read('deploy/helm/latchkey/values.yaml');
    const number = (key: string): number =>
      Number(new RegExp(`^${key}: (\\d+)`, 'm').exec(values)?.[1] ?? NaN);
    expect(number('terminationGracePeriodSeconds')).toBeGreaterThan(number('shutdownGraceSeconds'));
  });

  it('ECS templates accept exactly the connector ids that make valid ECS, IAM and log names', () => {
    const cfn = read('deploy/ecs/cloudformation.yaml');
    const cfnPattern = /ConnectorId:\n\s+Type: String\n\s+AllowedPattern: '([^']+)'/.exec(cfn)?.[1];
    const tfPattern = /regex\("([^"]+)", var\.connector_id\)/.exec(
      read('deploy/ecs/terraform/variables.tf'),
    )?.[1];
    expect(cfnPattern).toBeDefined();
    expect(tfPattern).toBe(cfnPattern);
    const accepts = new RegExp(cfnPattern ?? '^$');
    // What AWS accepts for the names the templates derive from the id (latchkey-<id>):
    // ECS task family and service: letters, digits, '_' and '-', up to 255; IAM role name:
    // [\w+=,.@-], up to 64; CloudWatch log group: [\w./#-], up to 512.
    const ecsName = /^[A-Za-z0-9_-]{1,255}$/;
    const iamRole = /^[\w+=,.@-]{1,64}$/;
    const logGroup = /^[\w./#-]{1,512}$/;
    for (const name of ['ConnectorId}', 'latchkey-${ConnectorId}']) expect(cfn).toContain(name);
    const samples = [
      'prod-eu-1',
      'acme_prod',
      'a',
      'x'.repeat(50),
      'acme.prod',
      'a:b',
      'x'.repeat(51),
      '',
    ];
    for (const id of samples) {
      const valid =
        ecsName.test(`latchkey-${id}`) &&
        iamRole.test(`latchkey-${id}`) &&
        logGroup.test(`/ecs/latchkey/${id}`) &&
        id.length >= 1 &&
        id.length <= 50;
      expect(accepts.test(id), id).toBe(valid);
    }
    // And every id the templates accept is one the agent accepts (LATCHKEY_CONNECTOR_ID).
    for (const id of samples.filter((i) => accepts.test(i))) {
      expect(ID_PATTERN.test(id), id).toBe(true);
    }
  });

  it('the image runs the Node.js major CI tests on, pinned by digest', () => {
    const image = /^ARG NODE_IMAGE=(\S+)$/m.exec(read('Dockerfile'))?.[1] ?? '';
    expect(image).toMatch(/^node:\d+\.\d+\.\d+-[a-z]+-slim@sha256:[0-9a-f]{64}$/);
    const ciMajor = /LATCHKEY_LTS_NODE:-(\d+)\}/.exec(read('.ci/run'))?.[1];
    expect(image.startsWith(`node:${ciMajor ?? '?'}.`)).toBe(true);
  });

  it('the ECS task definitions are read-only, stop gracefully and log', () => {
    const cfn = read('deploy/ecs/cloudformation.yaml');
    for (const line of [
      'ReadonlyRootFilesystem: true',
      'StopTimeout: !Ref StopTimeoutSeconds',
      'ValueFrom: !Ref ConnectorTokenSecretArn',
      'LogDriver: awslogs',
      'TaskRoleArn: !GetAtt TaskRole.Arn',
    ]) {
      expect(cfn, line).toContain(line);
    }
    const tf = read('deploy/ecs/terraform/main.tf');
    for (const line of [
      'readonlyRootFilesystem = true',
      'stopTimeout = var.stop_timeout_seconds',
      'logDriver = "awslogs"',
    ]) {
      expect(tf, line).toContain(line);
    }
  });
});
