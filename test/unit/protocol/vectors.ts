/**
 * Published test vectors of docs/protocol.md. The tests recompute each value with our
 * code and check that the document quotes exactly these strings.
 */

/** Ed25519 key pair of RFC 8032, section 7.1, TEST 1. */
export const SIGNING_SEED = 'nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A';
export const SIGNING_PUBLIC_KEY = '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo';
export const SIGNING_KEY_ID = '21fe31dfa154a261';

/** X25519 keys of RFC 7748, section 6.1: Bob is the recipient, Alice's key is the ephemeral. */
export const RECIPIENT_PRIVATE_HEX =
  '5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb';
export const RECIPIENT_PUBLIC_KEY = '3p7bfXt9wbTTW2HC7OQ1Nz-DQ8hbeGdNrfx-FG-IK08';
export const EPHEMERAL_PRIVATE_HEX =
  '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a';
export const SHARED_SECRET_HEX = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
export const SEAL_KEY_HEX = 'feb7c09c28d5e8bedba69b0febca2bb81d1802e10c02ce65826b175cd5020f57';
export const SEAL_IV_HEX = '000102030405060708090a0b';

export const VECTOR_ENVELOPE = {
  id: 'cmd-0001',
  kind: 'grant',
  connectorId: 'conn-eu-1',
  issuedAt: '2026-11-25T20:00:00.000Z',
  expiresAt: '2026-11-25T20:05:00.000Z',
  integration: {
    id: 'pg-sales',
    type: 'postgres',
    config: { host: 'sales.db.internal', port: 5432, database: 'sales' },
    secret: {
      store: 'aws-secrets-manager',
      secretId: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:latchkey/pg-sales',
    },
  },
  params: {
    grantId: 'g-42',
    grantee: { email: 'ada@example.com' },
    resources: [{ type: 'database', id: 'database:sales' }],
    permission: 'read',
    expiresAt: '2026-11-25T22:00:00.000Z',
    recipientKey: RECIPIENT_PUBLIC_KEY,
  },
};

export const VECTOR_CANONICAL =
  '{"connectorId":"conn-eu-1","expiresAt":"2026-11-25T20:05:00.000Z","id":"cmd-0001","integration":{"config":{"database":"sales","host":"sales.db.internal","port":5432},"id":"pg-sales","secret":{"secretId":"arn:aws:secretsmanager:eu-west-1:123456789012:secret:latchkey/pg-sales","store":"aws-secrets-manager"},"type":"postgres"},"issuedAt":"2026-11-25T20:00:00.000Z","kind":"grant","params":{"expiresAt":"2026-11-25T22:00:00.000Z","grantId":"g-42","grantee":{"email":"ada@example.com"},"permission":"read","recipientKey":"3p7bfXt9wbTTW2HC7OQ1Nz-DQ8hbeGdNrfx-FG-IK08","resources":[{"id":"database:sales","type":"database"}]}}';

export const VECTOR_SIGNATURE =
  'RPXGQGx5G-FYQyJU1RUTrkngNLiF-vwcQPHoey-RaiafJJSXaCktWRm34rniY_0kw-6eqkIOSRLelIuKI0sABQ';

export const VECTOR_DIGEST = 'bfb5cc60d8fd8850915a8d61f3426ac51c45f3be06eb1d46bcd1cd408633b181';

export const VECTOR_CREDENTIALS = {
  username: 'lk_ada_example_com_3f9c',
  password: 'correct horse battery staple',
};

export const VECTOR_SEALED = {
  alg: 'X25519-HKDF-SHA256-A256GCM',
  epk: 'hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo',
  iv: 'AAECAwQFBgcICQoL',
  ct: '-KJjE0BLbnEj0kl5YQFA4oPIakyv0szBSesbXnv5lUtKtg98ZCAgXL8Qr6sMy_1_NoS2qLpA73YZYDC4YFAhOqxc5cuQcObPmCQQv2WvYuI',
  tag: 'i9jYPYoRxeQfZoWPccq8Sw',
} as const;
