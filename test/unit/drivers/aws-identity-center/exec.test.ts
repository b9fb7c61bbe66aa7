/**
 * `latchkey exec` drives the registered `aws-identity-center` type end to end through the
 * dispatcher (the same path the reference control plane's commands take), against the
 * fake Identity Center.
 */
import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { execLocal, loadLocalConfig } from '../../../../src/cli/exec.js';
import { DEV, INSTANCE, MGMT, STORE, World } from './world.js';

const world = new World();
const integration = {
  id: 'ic-1',
  type: 'aws-identity-center',
  config: { accountId: MGMT, region: 'eu-west-1', instanceArn: INSTANCE, identityStoreId: STORE },
};

describe('latchkey exec with aws-identity-center', () => {
  beforeEach(() => {
    world.fresh();
  });
  afterAll(() => {
    world.restore();
  });

  it('grants and revokes an existing permission set', async () => {
    const jane = world.addUser('jane', 'jane@example.com');
    const ps = world.addPermissionSet('ReadOnly');
    const config = loadLocalConfig(undefined, { LATCHKEY_AWS_REGION: 'eu-west-1' });
    const params = {
      grantId: 'g-exec',
      grantee: { email: 'jane@example.com' },
      resources: [{ type: 'account', id: DEV }],
      permission: 'permission-set:ReadOnly',
    };
    const granted = await execLocal(config, integration, { kind: 'grant', params });
    expect(granted).toMatchObject({
      status: 'ok',
      output: { access: { groupName: 'latchkey-grant-g-exec', accounts: [DEV] } },
    });
    expect(world.hasAccess(jane, ps.arn, DEV)).toBe(true);
    const revoked = await execLocal(config, integration, { kind: 'revoke', params });
    expect(revoked).toMatchObject({ status: 'ok', output: { alreadyRevoked: false } });
    expect(world.hasAccess(jane, ps.arn, DEV)).toBe(false);
  }, 30_000);
});
