import assert from "node:assert/strict";
import { HeapTrimmer } from "../lib/heap_trimmer.ts";

/** glibc's malloc/free, to leave a known amount of free memory in its heap. */
function openMalloc() {
  return Deno.dlopen("libc.so.6", {
    malloc: { parameters: ["usize"], result: "pointer" },
    free: { parameters: ["pointer"], result: "void" },
  });
}

Deno.test({
  name: "HeapTrimmer.check() trims once when glibc's heap holds 8 MiB more free memory",
  ignore: Deno.build.os !== "linux",
  fn() {
    const trimmer = new HeapTrimmer();
    const libc = openMalloc();
    try {
      trimmer.check(); // whatever the heap held before is trimmed now
      // 32 MiB in 96 KiB blocks (below glibc's mmap threshold, so they come from the heap); every
      // other one freed leaves 16 MiB free inside the heap, held in place by the blocks between.
      const blocks = Array.from({ length: 340 }, () => libc.symbols.malloc(96n * 1024n));
      for (let i = 0; i < blocks.length; i += 2) libc.symbols.free(blocks[i]);
      assert.equal(trimmer.check(), true);
      // The 16 MiB stay counted as free after the trim (only their pages went back), so a trimmer
      // without its "changed since the last trim" rule would trim on every check. Other threads
      // of this process (the test runner's, V8's) allocate meanwhile and may move the count past
      // the rule's 2 MiB once: of three checks in a row at least one must see nothing to do.
      const again = [trimmer.check(), trimmer.check(), trimmer.check()];
      assert.ok(again.includes(false), `trimmed on every check: ${again}`);
      for (let i = 1; i < blocks.length; i += 2) libc.symbols.free(blocks[i]);
    } finally {
      libc.close();
      trimmer.close();
    }
  },
});

Deno.test({
  name: "HeapTrimmer.check() does nothing without the FFI permission",
  ignore: Deno.build.os !== "linux",
  async fn() {
    // Last in this file: a revoked permission stays revoked for the rest of the module.
    const trimmer = new HeapTrimmer();
    try {
      const libc = openMalloc();
      const blocks = Array.from({ length: 340 }, () => libc.symbols.malloc(96n * 1024n));
      for (let i = 0; i < blocks.length; i += 2) libc.symbols.free(blocks[i]);
      await Deno.permissions.revoke({ name: "ffi" });
      assert.equal(trimmer.check(), false, "16 MiB free, but no FFI to trim with");
      for (let i = 1; i < blocks.length; i += 2) libc.symbols.free(blocks[i]);
      libc.close();
    } finally {
      trimmer.close();
    }
  },
});
