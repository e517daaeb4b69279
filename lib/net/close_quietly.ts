/**
 * Closes a socket, listener or connection that may be closed already. Closing twice throws
 * BadResource in Deno; on teardown paths that is never news, so it is swallowed here, once.
 */
export function closeQuietly(resource: { close(): void } | undefined): void {
  try {
    resource?.close();
  } catch {
    // Closed already.
  }
}
