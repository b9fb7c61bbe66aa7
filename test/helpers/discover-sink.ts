/**
 * A `DiscoverSink` that collects what a driver writes to it (the agent's result spool path,
 * src/controlplane/spool.ts), with the order of the calls, for comparing a streamed
 * discover with the same discover returned whole.
 */
import type { DiscoverSink } from '../../src/drivers/driver.js';
import type { InventoryEntry, InventoryPrincipal } from '../../src/protocol/messages.js';

export interface CollectedDiscover {
  resources: unknown[];
  principals: InventoryPrincipal[];
  entries: InventoryEntry[];
  /** One name per call, in call order. */
  order: ('resources' | 'inventory' | 'entries')[];
}

export function collectingSink(): { sink: DiscoverSink; got: CollectedDiscover } {
  const got: CollectedDiscover = { resources: [], principals: [], entries: [], order: [] };
  const sink: DiscoverSink = {
    resources: (page) => {
      got.order.push('resources');
      got.resources.push(...page);
      return Promise.resolve();
    },
    inventory: (principals) => {
      got.order.push('inventory');
      got.principals.push(...principals);
      return Promise.resolve();
    },
    entries: (page) => {
      got.order.push('entries');
      got.entries.push(...page);
      return Promise.resolve();
    },
  };
  return { sink, got };
}

/** The sink's calls were resources first, then the inventory once, then its entries. */
export function inSinkOrder(order: CollectedDiscover['order']): boolean {
  const inv = order.indexOf('inventory');
  return (
    inv >= 0 &&
    order.lastIndexOf('inventory') === inv &&
    order.lastIndexOf('resources') < inv &&
    order.slice(inv + 1).every((o) => o === 'entries')
  );
}
