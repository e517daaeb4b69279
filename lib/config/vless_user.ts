/** The parts of a VLESS user both sides share: `id` (inbound clients, outbound users) and `flow`. */
import { describe, join, type Obj, type Reader } from "./reader.ts";
import { parseUserId, USER_ID_RULE } from "./uuid.ts";
import { messageOf } from "../error_message.ts";

/** Flows are XTLS features; only the empty flow exists in dray. */
export function readFlow(r: Reader, o: Obj, path: string): string | undefined {
  const flow = r.string(o, "flow", path, "");
  if (flow) return r.unsupported(join(path, "flow"), `flow ${describe(flow)} (XTLS) is`);
  return flow;
}

/** `id`: a UUID, or a 1-30 byte string mapped to one (Xray's rule). */
export function readUserId(
  r: Reader,
  o: Obj,
  path: string,
): { id: string; bytes: Uint8Array } | undefined {
  const p = join(path, "id");
  const v = o.id;
  if (v === undefined || v === null) return r.problem(p, "is required");
  if (typeof v !== "string") return r.problem(p, `${USER_ID_RULE}, got ${describe(v)}`);
  try {
    return parseUserId(v);
  } catch (err) {
    return r.problem(p, messageOf(err));
  }
}
