/**
 * CloudFormation templates in tests: YAML with the short-form intrinsics (!Sub, !Ref, !If,
 * …) parsed into their long form ({ "Fn::Sub": … }), and a resolver for !Sub and !Ref.
 */
import { parse as parseYaml, type CollectionTag, type ScalarTag, type Tags } from 'yaml';

/** CloudFormation short-form intrinsics, parsed into their long form ({ "Fn::Sub": … }). */
const CFN_FUNCTIONS = [
  'And',
  'Base64',
  'Cidr',
  'Condition',
  'Equals',
  'FindInMap',
  'GetAZs',
  'GetAtt',
  'If',
  'ImportValue',
  'Join',
  'Not',
  'Or',
  'Ref',
  'Select',
  'Split',
  'Sub',
];
const longName = (fn: string): string => (fn === 'Ref' || fn === 'Condition' ? fn : `Fn::${fn}`);
const CFN_TAGS: Tags = CFN_FUNCTIONS.flatMap((fn): (ScalarTag | CollectionTag)[] => [
  {
    tag: `!${fn}`,
    resolve: (value: string) => ({ [longName(fn)]: fn === 'GetAtt' ? value.split('.') : value }),
  },
  {
    tag: `!${fn}`,
    collection: 'seq',
    resolve: (seq) => ({ [longName(fn)]: seq.toJSON() as unknown }),
  },
  {
    tag: `!${fn}`,
    collection: 'map',
    resolve: (map) => ({ [longName(fn)]: map.toJSON() as unknown }),
  },
]);

export interface CfnTemplate {
  Parameters: Record<string, { Default?: string | number }>;
  Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
  Rules?: Record<string, { RuleCondition?: unknown; Assertions: { Assert: unknown }[] }>;
}

/** Parses a CloudFormation YAML template, short-form intrinsics included. */
export function parseCloudFormation(text: string): CfnTemplate {
  return parseYaml(text, { customTags: CFN_TAGS }) as CfnTemplate;
}

/** Resolves !Sub (string form) and !Ref against `vars`; anything else must not be there. */
export function resolveCfn(node: unknown, vars: Record<string, string>): unknown {
  if (Array.isArray(node)) return node.map((n) => resolveCfn(n, vars));
  if (node === null || typeof node !== 'object') return node;
  const obj = node as Record<string, unknown>;
  const sub = obj['Fn::Sub'];
  if (typeof sub === 'string') {
    return sub.replace(/\$\{(!?)([A-Za-z0-9:]+)\}/g, (_m, bang: string, name: string) => {
      if (bang) return `\${${name}}`;
      const value = vars[name];
      if (value === undefined) throw new Error(`!Sub names an unknown variable ${name}`);
      return value;
    });
  }
  const ref = obj.Ref;
  if (typeof ref === 'string') {
    const value = vars[ref];
    if (value === undefined) throw new Error(`!Ref names an unknown variable ${ref}`);
    return value;
  }
  const fn = Object.keys(obj).find((k) => k.startsWith('Fn::'));
  if (fn !== undefined) throw new Error(`${fn} is not resolved by this test`);
  return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, resolveCfn(v, vars)]));
}
