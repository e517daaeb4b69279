/**
 * The benchmark's target server in a process of its own (tests/support/target.ts: download,
 * upload with sha256, echo, UDP echo), so its CPU time is not mixed with the driver's. Prints
 * `{"tcp": port, "udp": port}` as its first line, then serves until killed.
 */
import { startTarget } from "../../tests/support/target.ts";

const target = startTarget();
console.log(JSON.stringify({ tcp: target.tcpPort, udp: target.udpPort }));
