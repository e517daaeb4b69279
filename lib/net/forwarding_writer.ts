/**
 * A writer that hands everything on to another writer. Subclasses change what `write` (and
 * `close`, `abort`) do — put a header in front of the first chunk, frame datagrams — without a
 * WritableStream of their own: no stream objects per connection and no extra hop per chunk, and
 * backpressure stays the inner writer's (`ready`, `desiredSize`).
 */
export class ForwardingWriter implements WritableStreamDefaultWriter<Uint8Array> {
  protected readonly inner: WritableStreamDefaultWriter<Uint8Array>;

  constructor(inner: WritableStreamDefaultWriter<Uint8Array>) {
    this.inner = inner;
  }

  get closed(): Promise<void> {
    return this.inner.closed;
  }

  get ready(): Promise<void> {
    return this.inner.ready;
  }

  get desiredSize(): number | null {
    return this.inner.desiredSize;
  }

  write(chunk: Uint8Array): Promise<void> {
    return this.inner.write(chunk);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  abort(reason?: unknown): Promise<void> {
    return this.inner.abort(reason);
  }

  releaseLock(): void {
    this.inner.releaseLock();
  }
}
