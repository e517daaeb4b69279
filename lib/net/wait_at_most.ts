/**
 * Waits until `work` settles or `ms` pass, whichever is first, and clears its timer either way.
 * Resolves true if `work` settled in time (its value or error is ignored). For bounded waits on
 * teardown paths: a grace period, a lingering close, a last write to a peer that stopped reading.
 */
export async function waitAtMost(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([work.then(() => true, () => true), expired]);
  } finally {
    clearTimeout(timer);
  }
}
