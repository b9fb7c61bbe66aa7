/**
 * The Helm chart through a real Helm (issue 15): `helm lint --strict`, `helm template` and
 * `helm install --dry-run=client` (for NOTES.txt) of deploy/helm/latchkey with several value
 * sets, every rendered object (the `helm test` pod too) validated against the Kubernetes
 * OpenAPI schemas (kubernetes-models; the prometheus-operator models for the ServiceMonitor)
 * and, for the built-in kinds, checked for fields Kubernetes does not know (what the API
 * server's strict field validation refuses; the field lists of @kubernetes/client-node's
 * models), for names and labels Kubernetes refuses, and for pods the "restricted" Pod
 * Security Standard refuses. Helm comes from the npm registry (test/helpers/helm.ts).
 * Without it (another platform, no `helm` on PATH) the file is skipped with a NOT RUN line,
 * except in CI on linux/x64, where the npm package's Helm must run: there it fails.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Pod } from 'kubernetes-models/v1/Pod';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import { Service } from 'kubernetes-models/v1/Service';
import type { IService } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import type { IServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import type { IRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { findHelm } from '../../helpers/helm.js';
import type { Helm } from '../../helpers/helm.js';

const CHART = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../../deploy/helm/latchkey',
);
const NAMESPACE = 'access';
const RELEASE = 'latchkey';

const lookup = await findHelm();
const mustRun = Boolean(process.env.CI) && process.platform === 'linux' && process.arch === 'x64';
if (!lookup.ok) {
  process.stderr.write(
    `\nNOT RUN: the Helm chart tests (test/unit/deploy/helm.test.ts): ${lookup.why}.\n\n`,
  );
}

type K8sObject = Record<string, unknown> & { apiVersion: string; kind: string };
interface Validatable {
  validate(): void;
}

/** Every kind the chart may render, with its schema model and client-node field list. */
const KINDS: Record<string, { model: (o: K8sObject) => Validatable; fields?: string }> = {
  'apps/v1/Deployment': { model: (o) => new Deployment(o as never), fields: 'V1Deployment' },
  'v1/Service': { model: (o) => new Service(o as never), fields: 'V1Service' },
  'v1/ServiceAccount': {
    model: (o) => new ServiceAccount(o as never),
    fields: 'V1ServiceAccount',
  },
  'v1/ConfigMap': { model: (o) => new ConfigMap(o as never), fields: 'V1ConfigMap' },
  'v1/Pod': { model: (o) => new Pod(o as never), fields: 'V1Pod' },
  'networking.k8s.io/v1/NetworkPolicy': {
    model: (o) => new NetworkPolicy(o as never),
    fields: 'V1NetworkPolicy',
  },
  'policy/v1/PodDisruptionBudget': {
    model: (o) => new PodDisruptionBudget(o as never),
    fields: 'V1PodDisruptionBudget',
  },
  'rbac.authorization.k8s.io/v1/Role': { model: (o) => new Role(o as never), fields: 'V1Role' },
  'rbac.authorization.k8s.io/v1/RoleBinding': {
    model: (o) => new RoleBinding(o as never),
    fields: 'V1RoleBinding',
  },
  // A CRD: its schema (the operator's) is checked; unknown fields are not (no field list).
  'monitoring.coreos.com/v1/ServiceMonitor': { model: (o) => new ServiceMonitor(o as never) },
};

const attrSchema = z.array(z.object({ baseName: z.string(), type: z.string() }));
/** The fields of a client-node model (e.g. V1PodSpec), or undefined for a scalar type. */
function fieldsOf(type: string): Map<string, string> | undefined {
  const cls: unknown = (k8s as Record<string, unknown>)[type];
  if (typeof cls !== 'function' || !('getAttributeTypeMap' in cls)) return undefined;
  const get = cls.getAttributeTypeMap;
  if (typeof get !== 'function') return undefined;
  return new Map(attrSchema.parse(get.call(cls)).map((a) => [a.baseName, a.type]));
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Paths of fields that the Kubernetes type `type` does not have (strict field validation). */
function unknownFields(value: unknown, type: string, at: string, out: string[]): string[] {
  const array = /^Array<(.+)>$/.exec(type);
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (array?.[1] && Array.isArray(value)) {
    const t = array[1];
    value.forEach((v, i) => unknownFields(v, t, `${at}/${i}`, out));
  } else if (map?.[1] && isRecord(value)) {
    for (const [k, v] of Object.entries(value)) unknownFields(v, map[1], `${at}/${k}`, out);
  } else if (isRecord(value)) {
    const fields = fieldsOf(type);
    if (fields) {
      for (const [k, v] of Object.entries(value)) {
        const t = fields.get(k);
        if (t === undefined) out.push(`${at}/${k}`);
        else unknownFields(v, t, `${at}/${k}`, out);
      }
    }
  }
  return out;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Label keys and values as the API server checks them (63-character names and values). */
function badLabels(labels: unknown, at: string): string[] {
  if (!isRecord(labels)) return [];
  const bad: string[] = [];
  for (const [key, value] of Object.entries(labels)) {
    const slash = key.lastIndexOf('/');
    const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
    const name = key.slice(slash + 1);
    const keyOk =
      name.length <= 63 &&
      LABEL_NAME.test(name) &&
      (prefix === undefined || (prefix.length <= 253 && DNS_SUBDOMAIN.test(prefix)));
    const valueOk =
      typeof value === 'string' && value.length <= 63 && (value === '' || LABEL_NAME.test(value));
    if (!keyOk || !valueOk) bad.push(`${at}/${key}=${String(value)}`);
  }
  return bad;
}

/** Every label map of an object: its own, its pod template's, its selectors'. */
function labelMaps(value: unknown, at: string, out: [unknown, string][]): [unknown, string][] {
  if (Array.isArray(value)) value.forEach((v, i) => labelMaps(v, `${at}/${i}`, out));
  else if (isRecord(value)) {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'labels' || k === 'matchLabels') out.push([v, `${at}/${k}`]);
      // A Service's selector is a plain label map.
      else if (k === 'selector' && at === '/spec' && isRecord(v) && !('matchLabels' in v)) {
        out.push([v, `${at}/${k}`]);
      } else labelMaps(v, `${at}/${k}`, out);
    }
  }
  return out;
}

const RESTRICTED_VOLUMES = [
  'configMap',
  'csi',
  'downwardAPI',
  'emptyDir',
  'ephemeral',
  'persistentVolumeClaim',
  'projected',
  'secret',
];

/**
 * What the Pod Security Standard "restricted" (Kubernetes' pod security admission, enforced
 * by many clusters and by OpenShift's restricted-v2 SCC in spirit) refuses in a pod.
 */
function restrictedViolations(spec: IPodSpec): string[] {
  const v: string[] = [];
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) v.push('host namespaces');
  for (const vol of spec.volumes ?? []) {
    const types = Object.keys(vol).filter((k) => k !== 'name');
    if (!types.every((t) => RESTRICTED_VOLUMES.includes(t)))
      v.push(`volume ${vol.name}: ${types.join()}`);
  }
  const pod = spec.securityContext ?? {};
  if (pod.runAsUser === 0) v.push('pod runAsUser 0');
  for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) {
    const sc = c.securityContext ?? {};
    if (sc.privileged) v.push(`${c.name}: privileged`);
    if (sc.allowPrivilegeEscalation !== false) v.push(`${c.name}: allowPrivilegeEscalation`);
    if ((sc.runAsNonRoot ?? pod.runAsNonRoot) !== true) v.push(`${c.name}: runAsNonRoot`);
    if (sc.runAsUser === 0) v.push(`${c.name}: runAsUser 0`);
    const seccomp = (sc.seccompProfile ?? pod.seccompProfile)?.type;
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost')
      v.push(`${c.name}: seccompProfile`);
    if (!sc.capabilities?.drop?.includes('ALL')) v.push(`${c.name}: capabilities not dropped`);
    const added = (sc.capabilities?.add ?? []).filter((a) => a !== 'NET_BIND_SERVICE');
    if (added.length > 0) v.push(`${c.name}: capabilities added ${added.join()}`);
    if ((c.ports ?? []).some((p) => p.hostPort)) v.push(`${c.name}: hostPort`);
  }
  return v;
}

/** Throws, naming the object, if Kubernetes would refuse it. */
function validateObject(o: K8sObject): void {
  const id = `${o.kind} ${String(isRecord(o.metadata) ? o.metadata.name : '?')}`;
  const kind = KINDS[`${o.apiVersion}/${o.kind}`];
  if (!kind) throw new Error(`${id}: ${o.apiVersion}/${o.kind} is not a kind this test knows`);
  try {
    kind.model(o).validate();
  } catch (e) {
    throw new Error(`${id}: ${String(e)}`);
  }
  if (kind.fields) {
    const unknown = unknownFields(o, kind.fields, '', []);
    if (unknown.length > 0) throw new Error(`${id}: unknown fields ${unknown.join(', ')}`);
  }
  // Volume and container names are DNS labels (the OpenAPI schemas do not say so).
  const podSpec =
    o.kind === 'Pod'
      ? o.spec
      : (o as { spec?: { template?: { spec?: unknown } } }).spec?.template?.spec;
  if (isRecord(podSpec)) {
    for (const list of ['volumes', 'containers'] as const) {
      for (const item of Array.isArray(podSpec[list]) ? (podSpec[list] as unknown[]) : []) {
        const n = isRecord(item) ? item.name : undefined;
        if (typeof n !== 'string' || n.length > 63 || !DNS_LABEL.test(n)) {
          throw new Error(`${id}: ${list} name ${String(n)} is not a DNS label`);
        }
      }
    }
  }
  if (isRecord(podSpec)) {
    const violations = restrictedViolations(podSpec as unknown as IPodSpec);
    if (violations.length > 0) {
      throw new Error(
        `${id}: not allowed by the restricted pod security standard: ${violations.join('; ')}`,
      );
    }
  }
  const labels = labelMaps(o, '', []).flatMap(([m, at]) => badLabels(m, at));
  if (labels.length > 0) throw new Error(`${id}: invalid labels ${labels.join(', ')}`);
  const name = isRecord(o.metadata) ? o.metadata.name : undefined;
  // A Service's name is a DNS-1035 label (it becomes a DNS name), other names DNS subdomains.
  const nameOk =
    typeof name === 'string' &&
    (o.kind === 'Service'
      ? name.length <= 63 && DNS_1035_LABEL.test(name)
      : name.length <= 253 && DNS_SUBDOMAIN.test(name));
  if (!nameOk) throw new Error(`${id}: metadata.name is not a valid ${o.kind} name`);
}

function parseDocs(text: string): K8sObject[] {
  const objects: K8sObject[] = [];
  // YAML 1.1, as Helm and Kubernetes read it (sigs.k8s.io/yaml): 0440 is octal.
  for (const doc of parseAllDocuments(text, { version: '1.1' })) {
    if (doc.errors.length > 0) throw new Error(`rendered YAML: ${doc.errors.join('; ')}`);
    const o: unknown = doc.toJS();
    if (o === null || o === undefined) continue;
    if (!isRecord(o) || typeof o.apiVersion !== 'string' || typeof o.kind !== 'string') {
      throw new Error(`rendered document is not a Kubernetes object: ${JSON.stringify(o)}`);
    }
    objects.push(o as K8sObject);
  }
  return objects;
}

const tmp = mkdtempSync(path.join(tmpdir(), 'latchkey-helm-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let files = 0;
function valuesFile(values: unknown): string {
  const file = path.join(tmp, `values-${++files}.json`); // JSON is YAML
  writeFileSync(file, JSON.stringify(values));
  return file;
}

function helmRun(helm: Helm, args: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync(helm.bin, args, {
    encoding: 'utf8',
    env: { ...helm.env, KUBECONFIG: path.join(tmp, 'no-kubeconfig') },
    timeout: 60_000,
  });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

interface Rendered {
  objects: K8sObject[];
  notes: string;
  lint: string;
}

/**
 * Lints (strict), renders (template, and install --dry-run for NOTES), validates. `kube`: the
 * Kubernetes version to render for (Helm's default otherwise).
 */
function render(helm: Helm, values: unknown, chart = CHART, kube?: string): Rendered {
  const f = valuesFile(values);
  const kv = kube ? ['--kube-version', kube] : [];
  const lint = helmRun(helm, ['lint', '--strict', chart, '-f', f, ...kv]);
  if (lint.status !== 0) throw new Error(`helm lint --strict failed:\n${lint.out}${lint.err}`);
  const tpl = helmRun(helm, ['template', RELEASE, chart, '-n', NAMESPACE, '-f', f, ...kv]);
  if (tpl.status !== 0) throw new Error(`helm template failed:\n${tpl.err}`);
  const objects = parseDocs(tpl.out);
  for (const o of objects) validateObject(o);
  const install = helmRun(helm, [
    'install',
    RELEASE,
    chart,
    '-n',
    NAMESPACE,
    '-f',
    f,
    '--dry-run=client',
    '-o',
    'json',
  ]); // (no --kube-version for install; NOTES.txt does not depend on it)
  if (install.status !== 0) throw new Error(`helm install --dry-run failed:\n${install.err}`);
  const release = z
    .object({ info: z.object({ notes: z.string() }) })
    .parse(JSON.parse(install.out));
  return { objects, notes: release.info.notes, lint: lint.out };
}

function one<T>(r: Rendered, kind: string, name?: string): T {
  const found = r.objects.filter(
    (o) =>
      o.kind === kind && (name === undefined || (isRecord(o.metadata) && o.metadata.name === name)),
  );
  expect(found, `${kind} ${name ?? ''}`).toHaveLength(1);
  return found[0] as unknown as T;
}
const kinds = (r: Rendered): string[] => r.objects.map((o) => o.kind).sort();

const REQUIRED = {
  controlPlaneUrl: 'wss://control.example.com/v1/connect',
  connectorId: 'acme-prod-eu-west-1',
  trustedKeys: { 'cp-2026': 'MCowBQYDK2VwAyEAexamplekeyexamplekeyexamplekeyexa=' },
};
const ROLE_ARN = 'arn:aws:iam::123456789012:role/latchkey-connector';

/** Every optional feature on, with OpenShift-style security contexts and env overrides. */
const EVERYTHING = {
  ...REQUIRED,
  replicaCount: 3,
  image: { repository: 'registry.example.com/latchkey', tag: '0.1.0', pullPolicy: 'Always' },
  imagePullSecrets: [{ name: 'regcred' }],
  aws: { region: 'eu-west-1' },
  serviceAccount: {
    create: true,
    name: '',
    roleArn: ROLE_ARN,
    annotations: { 'example.com/owner': 'platform' },
  },
  http: { host: '::', port: 9090 },
  service: { type: 'ClusterIP', annotations: { 'example.com/scrape': 'true' } },
  serviceMonitor: {
    enabled: true,
    interval: '15s',
    scrapeTimeout: '5s',
    labels: { release: 'prometheus' },
  },
  networkPolicy: {
    enabled: true,
    metricsFrom: [
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
    ],
    egress: [
      { ports: [{ port: 443, protocol: 'TCP' }] },
      { to: [{ ipBlock: { cidr: '10.0.0.0/8' } }], ports: [{ port: 5432, protocol: 'TCP' }] },
      { ports: [{ port: 53, protocol: 'UDP' }] },
    ],
  },
  podDisruptionBudget: { enabled: true, maxUnavailable: 1 },
  extraVolumes: [
    { name: 'corp-ca', configMap: { name: 'corp-ca' } },
    { name: 'integrations', secret: { secretName: 'latchkey-integrations' } },
  ],
  extraVolumeMounts: [
    { name: 'corp-ca', mountPath: '/etc/latchkey-ca', readOnly: true },
    { name: 'integrations', mountPath: '/etc/latchkey-integrations', readOnly: true },
  ],
  env: {
    LATCHKEY_CA_BUNDLE_FILE: '/etc/latchkey-ca/ca.pem',
    LATCHKEY_LOG_LEVEL: 'debug', // overrides logLevel's entry
    LATCHKEY_HTTPS_PROXY: 'http://proxy.internal:3128',
  },
  extraEnv: [
    // overrides aws.region's entry
    { name: 'LATCHKEY_AWS_REGION', valueFrom: { configMapKeyRef: { name: 'aws', key: 'region' } } },
  ],
  // OpenShift's restricted SCC assigns the uid/gid: null removes the chart's numbers.
  podSecurityContext: { runAsUser: null, runAsGroup: null, fsGroup: null },
  containerSecurityContext: { runAsUser: null, runAsGroup: null },
  config: { concurrency: 4 },
  rbac: { secretNames: ['orders-db', 'billing-db'] },
  fileSecrets: [{ name: 'orders-db', secretName: 'orders-db-latchkey' }],
  resources: { requests: { cpu: '200m', memory: '256Mi' }, limits: { memory: '1Gi' } },
  nodeSelector: { 'kubernetes.io/os': 'linux' },
  tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'ops', effect: 'NoSchedule' }],
  affinity: {
    podAntiAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [
        {
          weight: 100,
          podAffinityTerm: {
            topologyKey: 'kubernetes.io/hostname',
            labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'latchkey' } },
          },
        },
      ],
    },
  },
  topologySpreadConstraints: [
    {
      maxSkew: 1,
      topologyKey: 'kubernetes.io/hostname',
      whenUnsatisfiable: 'DoNotSchedule',
      labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'latchkey' } },
    },
  ],
  podAnnotations: { 'example.com/team': 'platform' },
  podLabels: { team: 'platform' },
  priorityClassName: 'latchkey-critical',
};

/** The opposite: one replica, no NetworkPolicy, no state dir, an existing ServiceAccount. */
const MINIMAL = {
  ...REQUIRED,
  replicaCount: 1,
  networkPolicy: { enabled: false },
  stateDir: { enabled: false },
  serviceAccount: { create: false, name: 'existing-sa' },
};

/** Persistent state on an existing claim. */
const PERSISTENT = {
  ...REQUIRED,
  replicaCount: 1,
  stateDir: { enabled: true, existingClaim: 'latchkey-state' },
  fullnameOverride: 'connector',
};

/** The longest names the values allow: every derived name and label still fits. */
const LONG_NAMES = {
  ...REQUIRED,
  nameOverride: `latchkey-${'n'.repeat(54)}`, // 63 characters
  fileSecrets: [{ name: 's'.repeat(56), secretName: 'orders-db-latchkey' }],
  rbac: { secretNames: ['orders-db'] },
};

const envOf = (d: IDeployment): { name: string; value?: string; valueFrom?: unknown }[] =>
  d.spec?.template.spec?.containers[0]?.env ?? [];

describe.skipIf(!lookup.ok && !mustRun)('the Helm chart, rendered by a real Helm', () => {
  if (!lookup.ok) {
    it('has Helm in CI on linux/x64 (from the npm package)', () => {
      throw new Error(`no Helm: ${lookup.why}`);
    });
    return;
  }
  const helm = lookup.helm;

  it(`runs Helm 4 from the npm registry (${helm.version}, ${helm.source})`, () => {
    expect(helm.version).toMatch(/^v4\./);
  });

  it('defaults plus the required values: lint clean, every object valid, restricted pod', () => {
    const r = render(helm, REQUIRED);
    expect(r.lint).not.toMatch(/\[(WARNING|ERROR)\]/);
    expect(kinds(r)).toEqual([
      'Deployment',
      'NetworkPolicy',
      'Pod', // the `helm test` pod
      'PodDisruptionBudget',
      'Service',
      'ServiceAccount',
    ]);
    const d = one<IDeployment>(r, 'Deployment');
    const pod = d.spec?.template.spec;
    const c = pod?.containers[0];
    expect(pod?.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
    expect(c?.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
    expect(pod?.automountServiceAccountToken).toBe(false);
    const env = Object.fromEntries(envOf(d).map((e) => [e.name, e.value ?? e.valueFrom]));
    expect(env).toMatchObject({
      LATCHKEY_CONTROL_PLANE_URL: REQUIRED.controlPlaneUrl,
      LATCHKEY_CONNECTOR_ID: REQUIRED.connectorId,
      LATCHKEY_TRUSTED_KEYS: JSON.stringify(REQUIRED.trustedKeys),
      LATCHKEY_HTTP_HOST: '0.0.0.0',
      LATCHKEY_SHUTDOWN_GRACE: '30s',
      LATCHKEY_STATE_DIR: '/var/lib/latchkey',
      LATCHKEY_CONNECTOR_TOKEN: {
        secretKeyRef: { name: 'latchkey-connector-token', key: 'token' },
      },
    });
    expect(pod?.terminationGracePeriodSeconds).toBeGreaterThan(30);
    // The probes and the Service point at the container's named port.
    expect(c?.ports?.map((p) => p.name)).toEqual(['http']);
    expect(c?.readinessProbe?.httpGet?.path).toBe('/readyz');
    expect(c?.livenessProbe?.httpGet?.path).toBe('/healthz');
    const svc = one<IService>(r, 'Service');
    expect(svc.spec?.ports?.[0]?.targetPort).toBe('http');
    expect(svc.spec?.selector).toEqual(d.spec?.selector.matchLabels);
    expect(d.spec?.template.metadata?.labels).toMatchObject(svc.spec?.selector ?? {});
    // Without a role ARN, NOTES warns and still prints the IRSA subject.
    expect(r.notes).toContain('WARNING: serviceAccount.roleArn is empty');
    expect(r.notes).toContain(`system:serviceaccount:${NAMESPACE}:${RELEASE}`);
  });

  it('everything on: ServiceMonitor, NetworkPolicy, PDB, volumes, IRSA, IPv6, OpenShift, env overrides', () => {
    const r = render(helm, EVERYTHING);
    expect(kinds(r)).toEqual([
      'ConfigMap',
      'Deployment',
      'NetworkPolicy',
      'Pod',
      'PodDisruptionBudget',
      'Role',
      'RoleBinding',
      'Service',
      'ServiceAccount',
      'ServiceMonitor',
    ]);
    const d = one<IDeployment>(r, 'Deployment');
    const pod = d.spec?.template.spec;
    const c = pod?.containers[0];

    // One env entry per name; `env` and `extraEnv` replace the chart's own entries.
    const names = envOf(d).map((e) => e.name);
    expect(names.length).toBe(new Set(names).size);
    const byName = new Map(envOf(d).map((e) => [e.name, e]));
    expect(byName.get('LATCHKEY_LOG_LEVEL')?.value).toBe('debug');
    expect(byName.get('LATCHKEY_AWS_REGION')).toEqual(EVERYTHING.extraEnv[0]);
    expect(byName.get('LATCHKEY_HTTPS_PROXY')?.value).toBe('http://proxy.internal:3128');
    expect(byName.get('LATCHKEY_HTTP_HOST')?.value).toBe('::');
    expect(byName.get('LATCHKEY_HTTP_PORT')?.value).toBe('9090');
    expect(byName.get('LATCHKEY_CONFIG_FILE')?.value).toBe('/etc/latchkey/config.json');

    // OpenShift: no fixed uid/gid, everything else still restricted.
    expect(pod?.securityContext).toEqual({
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(c?.securityContext?.runAsUser).toBeUndefined();
    expect(c?.securityContext?.runAsGroup).toBeUndefined();
    expect(c?.securityContext?.readOnlyRootFilesystem).toBe(true);

    // Every mount names a volume of the pod; the extra ones are there.
    const volumes = new Set(pod?.volumes?.map((v) => v.name));
    for (const m of c?.volumeMounts ?? []) expect(volumes, m.name).toContain(m.name);
    expect(c?.volumeMounts?.map((m) => m.mountPath)).toEqual(
      expect.arrayContaining([
        '/etc/latchkey',
        '/var/lib/latchkey',
        '/var/run/latchkey/secrets/orders-db',
        '/etc/latchkey-ca',
        '/etc/latchkey-integrations',
      ]),
    );
    expect(pod?.automountServiceAccountToken).toBe(true); // the kubernetes secret store

    // IRSA on the ServiceAccount; NOTES prints the exact trust subject and no warning.
    const sa = one<IServiceAccount>(r, 'ServiceAccount');
    expect(sa.metadata?.annotations).toMatchObject({
      'eks.amazonaws.com/role-arn': ROLE_ARN,
      'example.com/owner': 'platform',
    });
    expect(pod?.serviceAccountName).toBe(sa.metadata?.name);
    expect(r.notes).toContain(`system:serviceaccount:${NAMESPACE}:${sa.metadata?.name ?? '?'}`);
    expect(r.notes).not.toContain('WARNING');
    const rb = one<IRoleBinding>(r, 'RoleBinding');
    expect(rb.subjects).toEqual([
      { kind: 'ServiceAccount', name: sa.metadata?.name, namespace: NAMESPACE },
    ]);

    // The ServiceMonitor scrapes the Service's port, and the NetworkPolicy lets Prometheus in.
    const svc = one<IService>(r, 'Service');
    const sm = r.objects.find((o) => o.kind === 'ServiceMonitor');
    const smSpec = z
      .object({
        selector: z.object({ matchLabels: z.record(z.string(), z.string()) }),
        endpoints: z.array(z.object({ port: z.string(), path: z.string() })),
      })
      .parse(sm?.spec);
    expect(svc.metadata?.labels).toMatchObject(smSpec.selector.matchLabels);
    expect(smSpec.endpoints[0]).toMatchObject({
      port: svc.spec?.ports?.[0]?.name,
      path: '/metrics',
    });
    const np = one<INetworkPolicy>(r, 'NetworkPolicy');
    expect(np.spec?.ingress?.[0]).toEqual({
      from: EVERYTHING.networkPolicy.metricsFrom,
      ports: [{ port: 'http', protocol: 'TCP' }],
    });
    expect(np.spec?.egress).toEqual(EVERYTHING.networkPolicy.egress);

    // The PDB never blocks drains while the pods are unready (control plane down).
    const pdb = one<IPodDisruptionBudget>(r, 'PodDisruptionBudget');
    expect(pdb.spec).toMatchObject({
      maxUnavailable: 1,
      unhealthyPodEvictionPolicy: 'AlwaysAllow',
    });
    expect(pdb.spec?.minAvailable).toBeUndefined();
    // Secret files: group-readable (0440), not world-readable.
    const secretVolume = pod?.volumes?.find((v) => v.name === 'secret-orders-db');
    expect(secretVolume?.secret?.defaultMode).toBe(0o440);
  });

  it('renders for the oldest Kubernetes the chart claims (1.25): no field it does not know', () => {
    const r = render(helm, EVERYTHING, CHART, '1.25.0');
    const pdb = one<IPodDisruptionBudget>(r, 'PodDisruptionBudget');
    expect(pdb.spec?.unhealthyPodEvictionPolicy).toBeUndefined();
    const tooOld = helmRun(helm, [
      'template',
      RELEASE,
      CHART,
      '-f',
      valuesFile(REQUIRED),
      '--kube-version',
      '1.24.0',
    ]);
    expect(tooOld.status).not.toBe(0);
    expect(tooOld.err).toContain('kubeVersion');
  });

  it('packages (as the release does) into a chart that renders the same objects', () => {
    const out = path.join(tmp, 'package');
    const pkg = helmRun(helm, ['package', CHART, '-d', out]);
    expect(pkg.status, pkg.err).toBe(0);
    const tgz = path.join(out, 'latchkey-0.1.0.tgz');
    expect(render(helm, EVERYTHING, tgz).objects).toEqual(render(helm, EVERYTHING).objects);
  });

  it('minimal, long-name and persistent-state value sets render valid objects', () => {
    const min = render(helm, MINIMAL);
    expect(kinds(min)).toEqual(['Deployment', 'Pod', 'Service']);
    const d = one<IDeployment>(min, 'Deployment');
    expect(d.spec?.template.spec?.serviceAccountName).toBe('existing-sa');
    expect(envOf(d).find((e) => e.name === 'LATCHKEY_STATE_DIR')?.value).toBe('off');
    expect(d.spec?.template.spec?.volumes ?? []).toEqual([]);
    expect(min.notes).toContain('did not create the ServiceAccount "existing-sa"');
    expect(min.notes).toContain(`system:serviceaccount:${NAMESPACE}:existing-sa`);

    const long = render(helm, LONG_NAMES);
    expect(kinds(long)).toContain('Pod');

    const p = render(helm, PERSISTENT);
    const pd = one<IDeployment>(p, 'Deployment', 'connector');
    expect(pd.spec?.template.spec?.volumes).toContainEqual({
      name: 'state',
      persistentVolumeClaim: { claimName: 'latchkey-state' },
    });
  });

  it('the `helm test` pod calls /readyz through the Service, is let in, and is not selected', () => {
    const r = render(helm, EVERYTHING);
    const test = one<IPod>(r, 'Pod');
    expect(test.metadata?.annotations?.['helm.sh/hook']).toBe('test');
    const c = test.spec?.containers[0];
    const svc = one<IService>(r, 'Service');
    expect(c?.command?.join(' ')).toContain(
      `fetch('http://${svc.metadata?.name ?? '?'}:${String(svc.spec?.ports?.[0]?.port)}/readyz')`,
    );
    expect(c?.securityContext?.readOnlyRootFilesystem).toBe(true);
    expect(c?.image).toBe('registry.example.com/latchkey:0.1.0');
    const labels = test.metadata?.labels ?? {};
    const selected = Object.entries(svc.spec?.selector ?? {}).every(([k, v]) => labels[k] === v);
    expect(selected).toBe(false);
    const np = one<INetworkPolicy>(r, 'NetworkPolicy');
    const admitted = (np.spec?.ingress ?? []).some((rule) =>
      (rule.from ?? []).some(
        (peer) =>
          peer.namespaceSelector === undefined &&
          Object.entries(peer.podSelector?.matchLabels ?? {}).every(([k, v]) => labels[k] === v),
      ),
    );
    expect(admitted).toBe(true);
  });

  it('refuses through values.schema.json: an empty trustedKeys, no controlPlaneUrl, a misspelled key', () => {
    const refuse = (values: unknown): string => {
      const r = helmRun(helm, ['template', RELEASE, CHART, '-f', valuesFile(values)]);
      expect(r.status).not.toBe(0);
      return r.err;
    };
    expect(refuse({ ...REQUIRED, trustedKeys: {} })).toMatch(
      /at '\/trustedKeys': minProperties: got 0, want 1/,
    );
    const { controlPlaneUrl: _omitted, ...noUrl } = REQUIRED;
    expect(refuse(noUrl)).toMatch(/at '\/controlPlaneUrl'/);
    expect(refuse({ ...REQUIRED, controlPlaneUrl: 'ws://cp:8080' })).toMatch(
      /at '\/controlPlaneUrl'/,
    );
    expect(refuse({ ...REQUIRED, replicas: 3 })).toMatch(/additional properties 'replicas'/);
    // The chart's own checks (templates/_helpers.tpl), past the schema.
    expect(refuse({ ...REQUIRED, shutdownGraceSeconds: 60 })).toContain(
      'terminationGracePeriodSeconds must be larger than shutdownGraceSeconds',
    );
    expect(
      refuse({ ...REQUIRED, serviceMonitor: { enabled: true }, networkPolicy: { enabled: true } }),
    ).toContain('needs networkPolicy.metricsFrom');
    expect(
      refuse({ ...REQUIRED, serviceAccount: { create: false, name: 'sa', roleArn: ROLE_ARN } }),
    ).toContain('serviceAccount.roleArn needs serviceAccount.create');
    // Names that would make invalid Kubernetes names, and durations Prometheus cannot read.
    expect(
      refuse({ ...REQUIRED, fileSecrets: [{ name: 's'.repeat(57), secretName: 'x' }] }),
    ).toMatch(/at '\/fileSecrets\/0\/name'/);
    expect(
      refuse({
        ...REQUIRED,
        serviceMonitor: { enabled: true, interval: '30 seconds' },
        networkPolicy: { enabled: false },
      }),
    ).toMatch(/at '\/serviceMonitor\/interval'/);
    expect(refuse({ ...REQUIRED, probes: { liveness: { periodSecond: 5 } } })).toMatch(
      /at '\/probes\/liveness': additional properties 'periodSecond'/,
    );
    // And lint says so too.
    const lint = helmRun(helm, ['lint', CHART, '-f', valuesFile({ ...REQUIRED, trustedKeys: {} })]);
    expect(lint.status).not.toBe(0);
  });

  it('catches a broken chart: a wrong field, a wrong type and an unknown kind fail validation', () => {
    const mutate = (file: string, from: string, to: string): string => {
      const copy = mkdtempSync(path.join(tmp, 'chart-'));
      cpSync(CHART, copy, { recursive: true });
      const text = readFileSync(path.join(copy, file), 'utf8');
      expect(text).toContain(from);
      writeFileSync(path.join(copy, file), text.replace(from, to));
      return copy;
    };
    const deployment = 'templates/deployment.yaml';
    expect(() =>
      render(helm, REQUIRED, mutate(deployment, 'enableServiceLinks:', 'enableServiceLink:')),
    ).toThrow(/Deployment latchkey: unknown fields \/spec\/template\/spec\/enableServiceLink$/);
    expect(() =>
      render(
        helm,
        REQUIRED,
        mutate(deployment, 'revisionHistoryLimit: 5', 'revisionHistoryLimit: five'),
      ),
    ).toThrow(/Deployment latchkey: .*revisionHistoryLimit must be integer/);
    expect(() =>
      render(
        helm,
        REQUIRED,
        mutate('templates/pdb.yaml', 'kind: PodDisruptionBudget', 'kind: DisruptionBudget'),
      ),
    ).toThrow(/policy\/v1\/DisruptionBudget is not a kind this test knows/);
    // A removed API version: helm lint --strict refuses it.
    expect(() =>
      render(helm, REQUIRED, mutate('templates/pdb.yaml', 'policy/v1', 'policy/v1beta1')),
    ).toThrow(/helm lint --strict failed:[^]*policy\/v1beta1 PodDisruptionBudget is deprecated/);
  });
});
