/**
 * The AWS Organization walk, shared by every driver that works across member accounts
 * (`aws-discovery`, `aws-identity-center`, later organization-wide `aws-iam`/`aws-ssm`).
 *
 * Glossary
 * - **root**: the top of the organization tree (`r-xxxx`); **OU**: an organizational unit
 *   (`ou-xxxx-yyyyyyyy`). Accounts hang under a root or an OU.
 * - **start**: the parents the walk starts from. Default: every root (the whole
 *   organization). An explicit list (e.g. the OUs a grant names) walks only those subtrees.
 * - **excluded OU**: an OU (or root) that is not entered: neither its accounts nor any OU
 *   below it are listed. **Excluded account**: an account id dropped from the result.
 * - **active**: only accounts whose state is `ACTIVE` are returned (suspended and
 *   pending-closure accounts cannot be worked in).
 *
 * Call shape: with no start and no excluded OU the flat `ListAccounts` is enough; otherwise
 * the tree is walked breadth-first (`ListRoots` when no start is given, then per parent
 * `ListAccountsForParent` and `ListOrganizationalUnitsForParent`). Every listing is
 * paginated and goes through the caller's limiter; errors are mapped by `awsSend` and thrown
 * (a failed organization listing makes the whole answer meaningless).
 */
import {
  ListAccountsCommand,
  ListAccountsForParentCommand,
  ListOrganizationalUnitsForParentCommand,
  ListRootsCommand,
  type Account,
  type OrganizationsClient,
} from '@aws-sdk/client-organizations';
import { awsSend } from './call.js';

/** Upper bound on pages of one listing (a loop guard, far above any real organization). */
const MAX_PAGES = 10_000;

export interface OrganizationAccount {
  accountId: string;
  name: string | undefined;
  /** The root or OU the account was found under; undefined with the flat listing. */
  parentId: string | undefined;
}

export interface OrganizationWalkOptions {
  /** An Organizations client of the management or a delegated-administrator account. */
  orgs: OrganizationsClient;
  signal?: AbortSignal | undefined;
  /** Runs each AWS call (e.g. through the `organizations` service limiter). Default: directly. */
  run?: <T>(fn: () => Promise<T>) => Promise<T>;
  /** Parents (roots or OUs) to walk from; default every root. */
  startIds?: readonly string[] | undefined;
  excludedOuIds?: readonly string[] | undefined;
  excludedAccountIds?: readonly string[] | undefined;
}

/** Follow `next` tokens until the last page (a repeated token ends the loop). */
export async function paginate<P>(
  fetch: (token: string | undefined) => Promise<P>,
  next: (page: P) => string | undefined,
  onPage: (page: P) => void,
): Promise<void> {
  let token: string | undefined;
  const seen = new Set<string>();
  for (let i = 0; i < MAX_PAGES; i++) {
    const page = await fetch(token);
    onPage(page);
    token = next(page);
    if (token === undefined || token === '' || seen.has(token)) return;
    seen.add(token);
  }
}

function isActive(a: Account): boolean {
  const state = a.State ?? a.Status;
  return state === undefined || state === 'ACTIVE';
}

/**
 * The active accounts of the organization (or of the `startIds` subtrees), minus excluded
 * OUs with everything under them and minus excluded accounts, each once, in listing order.
 * @throws LatchkeyError when a listing fails (E_PRIVILEGE, E_THROTTLED, …)
 */
export async function listOrganizationAccounts(
  opts: OrganizationWalkOptions,
): Promise<OrganizationAccount[]> {
  const { orgs, signal } = opts;
  const run = opts.run ?? (<T>(fn: () => Promise<T>) => fn());
  const excludedOus = new Set(opts.excludedOuIds ?? []);
  const found: { account: Account; parentId: string | undefined }[] = [];

  if (excludedOus.size === 0 && opts.startIds === undefined) {
    await paginate(
      (token) =>
        run(() =>
          awsSend({ service: 'organizations', operation: 'ListAccounts', signal }, (o) =>
            orgs.send(new ListAccountsCommand(token ? { NextToken: token } : {}), o),
          ),
        ),
      (p) => p.NextToken,
      (p) => found.push(...(p.Accounts ?? []).map((account) => ({ account, parentId: undefined }))),
    );
  } else {
    const parents: string[] = [];
    if (opts.startIds !== undefined) {
      for (const id of opts.startIds) if (!excludedOus.has(id)) parents.push(id);
    } else {
      await paginate(
        (token) =>
          run(() =>
            awsSend({ service: 'organizations', operation: 'ListRoots', signal }, (o) =>
              orgs.send(new ListRootsCommand(token ? { NextToken: token } : {}), o),
            ),
          ),
        (p) => p.NextToken,
        (p) => {
          for (const r of p.Roots ?? []) if (r.Id && !excludedOus.has(r.Id)) parents.push(r.Id);
        },
      );
    }
    const entered = new Set<string>();
    for (let parent = parents.shift(); parent !== undefined; parent = parents.shift()) {
      const parentId = parent;
      if (entered.has(parentId)) continue;
      entered.add(parentId);
      await paginate(
        (token) =>
          run(() =>
            awsSend(
              {
                service: 'organizations',
                operation: 'ListAccountsForParent',
                resource: parentId,
                signal,
              },
              (o) =>
                orgs.send(
                  new ListAccountsForParentCommand({
                    ParentId: parentId,
                    ...(token ? { NextToken: token } : {}),
                  }),
                  o,
                ),
            ),
          ),
        (p) => p.NextToken,
        (p) => found.push(...(p.Accounts ?? []).map((account) => ({ account, parentId }))),
      );
      await paginate(
        (token) =>
          run(() =>
            awsSend(
              {
                service: 'organizations',
                operation: 'ListOrganizationalUnitsForParent',
                resource: parentId,
                signal,
              },
              (o) =>
                orgs.send(
                  new ListOrganizationalUnitsForParentCommand({
                    ParentId: parentId,
                    ...(token ? { NextToken: token } : {}),
                  }),
                  o,
                ),
            ),
          ),
        (p) => p.NextToken,
        (p) => {
          for (const ou of p.OrganizationalUnits ?? []) {
            if (ou.Id && !excludedOus.has(ou.Id)) parents.push(ou.Id);
          }
        },
      );
    }
  }
  const excludedAccounts = new Set(opts.excludedAccountIds ?? []);
  const seen = new Set<string>();
  const out: OrganizationAccount[] = [];
  for (const { account: a, parentId } of found) {
    if (!a.Id || seen.has(a.Id) || excludedAccounts.has(a.Id) || !isActive(a)) continue;
    seen.add(a.Id);
    out.push({ accountId: a.Id, name: a.Name, parentId });
  }
  return out;
}

/** `arn:<partition>:iam::<account>:role/<name>`: the role assumed in a member account. */
export function memberRoleArn(partition: string, accountId: string, roleName: string): string {
  return `arn:${partition}:iam::${accountId}:role/${roleName}`;
}
