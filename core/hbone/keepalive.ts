// HTTP/2 PING keepalive shared by both ends (ztunnel: every 10 s, 20 s timeout): a session whose
// peer stopped answering is torn down instead of holding tunnels that go nowhere.
import type { H2Session } from "../net/index.ts";

export interface KeepaliveState {
  readonly session: H2Session;
  pingOutstanding: boolean;
  lastPingAck: number;
}

/** Sends a PING if none is outstanding; returns false (after destroying it) if the session is dead. */
export function keepalive(s: KeepaliveState, timeoutMs: number, now = Date.now()): boolean {
  if (now - s.lastPingAck > timeoutMs) {
    s.session.destroy();
    return false;
  }
  if (s.pingOutstanding) return true;
  s.pingOutstanding = true;
  try {
    s.session.ping((err) => {
      s.pingOutstanding = false;
      if (!err) s.lastPingAck = Date.now();
    });
  } catch {
    s.pingOutstanding = false;
  }
  return true;
}
