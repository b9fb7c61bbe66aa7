import { describe, expect, it } from 'vitest';
import { bypassesProxy } from '../../../src/controlplane/client.js';

describe('bypassesProxy (NO_PROXY)', () => {
  it('matches exact names, domain suffixes, wildcards and ports', () => {
    expect(bypassesProxy('cp.example.com', '443', undefined)).toBe(false);
    expect(bypassesProxy('cp.example.com', '443', '')).toBe(false);
    expect(bypassesProxy('cp.example.com', '443', '*')).toBe(true);
    expect(bypassesProxy('cp.example.com', '443', 'cp.example.com')).toBe(true);
    expect(bypassesProxy('cp.example.com', '443', 'example.com')).toBe(true);
    expect(bypassesProxy('cp.example.com', '443', '.example.com')).toBe(true);
    expect(bypassesProxy('cp.example.com', '443', '*.example.com')).toBe(true);
    expect(bypassesProxy('cp.example.com', '443', 'ample.com')).toBe(false);
    expect(bypassesProxy('cp.example.com', '443', 'other.org, localhost')).toBe(false);
    expect(bypassesProxy('CP.Example.COM', '443', 'localhost,EXAMPLE.com')).toBe(true);
    expect(bypassesProxy('cp.example.com', '443', 'example.com:443')).toBe(true);
    expect(bypassesProxy('cp.example.com', '443', 'example.com:8443')).toBe(false);
    expect(bypassesProxy('127.0.0.1', '8080', '127.0.0.1')).toBe(true);
  });
});
