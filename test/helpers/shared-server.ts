/**
 * One server per test run, however many vitest projects run a global setup that asks for
 * it: every project (default, mariadb-modes) extends the root config and so runs the root
 * global setups once each. The first caller starts the server; the last teardown stops it.
 * Kept on `globalThis`: vitest may load a global-setup module once per project.
 */
interface Shared<T> {
  users: number;
  value: Promise<T>;
}

export async function acquireShared<T>(
  key: string,
  start: () => Promise<T>,
  stop: (value: T) => Promise<void>,
): Promise<{ value: T; release: () => Promise<void> }> {
  const store = globalThis as unknown as Record<string, Shared<T> | undefined>;
  const name = `__latchkey_shared_${key}`;
  let entry = store[name];
  if (!entry) {
    entry = { users: 0, value: start() };
    store[name] = entry;
    entry.value.catch(() => {
      if (store[name] === entry) store[name] = undefined;
    });
  }
  entry.users += 1;
  const mine = entry;
  const value = await mine.value;
  let released = false;
  return {
    value,
    release: async () => {
      if (released) return;
      released = true;
      mine.users -= 1;
      if (mine.users === 0) {
        if (store[name] === mine) store[name] = undefined;
        await stop(value);
      }
    },
  };
}
