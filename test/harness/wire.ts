// A TCP relay that sits on the wire between two ztunnels and records every byte both ways, so a
// test can prove what an observer of the network would (and would not) see.
import net from "node:net";

export interface RecordedConnection {
  /** bytes from the dialing side (the client ztunnel) to the listener behind the relay */
  readonly up: Buffer[];
  /** bytes from the listener back to the dialing side */
  readonly down: Buffer[];
}

export interface RecordingRelay {
  readonly host: string;
  readonly port: number;
  readonly connections: readonly RecordedConnection[];
  /** all bytes recorded in one direction, connections concatenated in accept order */
  bytes(direction: "up" | "down"): Buffer;
  close(): Promise<void>;
}

/**
 * Listens on `listen` and forwards each connection to `target`. With `keepSource`, the upstream
 * connection is bound to the client's own address, so the peer still sees the original source IP
 * (the inbound ztunnel uses it to find the source workload).
 */
export function recordingRelay(
  listen: { host: string; port: number },
  target: { host: string; port: number },
  opts: { keepSource?: boolean } = {},
): Promise<RecordingRelay> {
  const connections: RecordedConnection[] = [];
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  };
  const srv = net.createServer({ allowHalfOpen: true }, (down) => {
    track(down);
    const rec: RecordedConnection = { up: [], down: [] };
    connections.push(rec);
    const up = net.connect({
      host: target.host,
      port: target.port,
      allowHalfOpen: true,
      ...(opts.keepSource && down.remoteAddress ? { localAddress: down.remoteAddress } : {}),
    });
    track(up);
    down.on("data", (c: Buffer) => rec.up.push(Buffer.from(c)));
    up.on("data", (c: Buffer) => rec.down.push(Buffer.from(c)));
    down.pipe(up);
    up.pipe(down);
    const kill = () => {
      down.destroy();
      up.destroy();
    };
    down.on("error", kill);
    up.on("error", kill);
  });
  return new Promise((resolve, reject) => {
    srv.once("error", reject);
    srv.listen({ host: listen.host, port: listen.port, exclusive: true }, () => {
      const addr = srv.address() as net.AddressInfo;
      resolve({
        host: listen.host,
        port: addr.port,
        connections,
        bytes: (direction) => Buffer.concat(connections.flatMap((c) => c[direction])),
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            srv.close(() => r());
          }),
      });
    });
  });
}

export interface TlsRecordHeader {
  /** 0x14 change_cipher_spec, 0x15 alert, 0x16 handshake, 0x17 application_data */
  readonly type: number;
  readonly version: number;
  readonly length: number;
}

/**
 * Splits one direction of a TLS connection into record headers. Throws when the bytes are not a
 * well-formed sequence of TLS records (unknown content type, legacy version not 0x03xx, length
 * over the 2^14 + 256 ciphertext bound); a truncated last record is allowed (capture cut short).
 */
export function tlsRecords(buf: Buffer): TlsRecordHeader[] {
  const out: TlsRecordHeader[] = [];
  let off = 0;
  while (off + 5 <= buf.length) {
    const type = buf[off]!;
    const version = buf.readUInt16BE(off + 1);
    const length = buf.readUInt16BE(off + 3);
    if (type < 0x14 || type > 0x17) throw new Error(`byte ${off}: not a TLS record (content type 0x${type.toString(16)})`);
    if (version >> 8 !== 0x03) throw new Error(`byte ${off}: not a TLS record (version 0x${version.toString(16)})`);
    if (length > 16384 + 256) throw new Error(`byte ${off}: TLS record length ${length} over the limit`);
    out.push({ type, version, length });
    off += 5 + length;
  }
  return out;
}

/** A port that was free on `host` a moment ago (for flags that must name a port up front). */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen({ host, port: 0, exclusive: true }, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
