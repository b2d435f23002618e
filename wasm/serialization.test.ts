import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { resolveProperty, serializeValue, type StreamView } from "./properties.ts";
import { decodePairs, encodePairs, pairsByteSize, pairsFit, splitPropertyPath, utf8Length } from "./serialization.ts";

const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");

describe("header map pairs", () => {
  test("{a:1, b:22} encodes to the 29-byte reference vector", () => {
    const b = encodePairs(["a", "1", "b", "22"]);
    expect(b.length).toBe(29);
    expect(hex(b)).toBe(
      "02 00 00 00 01 00 00 00 01 00 00 00 01 00 00 00 02 00 00 00 61 00 31 00 62 00 32 32 00",
    );
    expect(decodePairs(b)).toEqual(["a", "1", "b", "22"]);
  });

  test("empty map: size 0, a single NUL and N=0 all decode to empty", () => {
    expect(decodePairs(new Uint8Array(0))).toEqual([]);
    expect(decodePairs(new Uint8Array([0]))).toEqual([]);
    expect(decodePairs(new Uint8Array(4))).toEqual([]);
    expect(hex(encodePairs([]))).toBe("00 00 00 00");
  });

  test("duplicate keys and UTF-8 survive a round trip", () => {
    const p = ["set-cookie", "a=1", "set-cookie", "b=2", "x-ünï", "värde ✓"];
    expect(decodePairs(encodePairs(p))).toEqual(p);
    expect(pairsByteSize(p)).toBe(encodePairs(p).length);
  });

  test("pairsFit agrees with the exact size at every bound, ASCII or not", () => {
    for (const p of [["a", "1"], ["x-ünï", "värde ✓", "k", "v"], ["emoji", "😀😀😀"]]) {
      const exact = pairsByteSize(p);
      for (let max = exact - 3; max <= exact + 3; max++) expect(pairsFit(p, max)).toBe(exact <= max);
      expect(pairsFit(p, 1 << 20)).toBe(true);
    }
  });

  test("malformed input is refused", () => {
    const good = encodePairs(["a", "1"]);
    expect(decodePairs(good.subarray(0, good.length - 1))).toBeUndefined(); // truncated
    const noNul = good.slice();
    noNul[noNul.length - 1] = 0x41;
    expect(decodePairs(noNul)).toBeUndefined();
    const trailing = new Uint8Array(good.length + 1);
    trailing.set(good);
    expect(decodePairs(trailing)).toBeUndefined();
    const huge = new Uint8Array(12);
    new DataView(huge.buffer).setUint32(0, 5000, true);
    expect(decodePairs(huge)).toBeUndefined(); // more than 1024 pairs
    const lying = new Uint8Array(12);
    new DataView(lying.buffer).setUint32(0, 1, true);
    new DataView(lying.buffer).setUint32(4, 0xffffffff, true);
    expect(decodePairs(lying)).toBeUndefined();
  });

  test("property: decode(encode(p)) == p; random bytes never throw", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.string(), fc.string()), { maxLength: 20 }), (pairs) => {
        const flat = pairs.flat();
        const clean = flat.map((s) => new TextDecoder().decode(new TextEncoder().encode(s)));
        expect(decodePairs(encodePairs(flat))).toEqual(clean);
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        const r = decodePairs(b);
        expect(r === undefined || Array.isArray(r)).toBe(true);
      }),
    );
  });

  test("utf8Length matches TextEncoder", () => {
    fc.assert(fc.property(fc.string({ unit: "grapheme" }), (s) => expect(utf8Length(s)).toBe(new TextEncoder().encode(s).length)));
    expect(utf8Length("\ud800x")).toBe(new TextEncoder().encode("\ud800x").length);
  });
});

describe("property paths and values", () => {
  test("segments split on NUL; a trailing NUL (C++ SDK) is ignored", () => {
    const enc = (s: string) => new TextEncoder().encode(s);
    expect(splitPropertyPath(enc("plugin_root_id"))).toEqual(["plugin_root_id"]);
    expect(splitPropertyPath(enc("request\0path"))).toEqual(["request", "path"]);
    expect(splitPropertyPath(enc("request\0path\0"))).toEqual(["request", "path"]);
  });

  test("values serialize as Envoy does", () => {
    expect(hex(serializeValue(5))).toBe("05 00 00 00 00 00 00 00");
    expect(hex(serializeValue(-1))).toBe("ff ff ff ff ff ff ff ff");
    expect(hex(serializeValue(true))).toBe("01");
    expect(new TextDecoder().decode(serializeValue("x"))).toBe("x");
    expect(decodePairs(serializeValue({ k: "v" }))).toEqual(["k", "v"]);
    expect(serializeValue(1.5).length).toBe(8);
  });

  test("stream attributes come from the current header maps and the embedder's values", () => {
    const view: StreamView = {
      props: {
        requestId: "rid-1",
        protocol: "HTTP/2",
        startTimeMs: 1_700_000_000_000,
        source: { address: "10.0.0.1", port: 4242, principal: "spiffe://cluster.local/ns/a/sa/b" },
        destination: { address: "fd00::1", port: 8080 },
        connection: { mtls: true, id: 7, requestedServerName: "svc.local" },
        extra: { "xds.cluster_name": "outbound|80||svc" },
      },
      completion: { responseCodeDetails: "via_upstream", responseFlags: 0 },
      requestHeaders: [":method", "POST", ":path", "/a/b?x=1", ":authority", "svc", ":scheme", "https", "x-h", "v"],
      requestTrailers: undefined,
      responseHeaders: [":status", "201"],
      responseTrailers: undefined,
      requestBodyBytes: 11,
      responseBodyBytes: 0,
    };
    const plugin = { name: "ns.p", rootId: "root", vmId: "vm", node: { id: "n1", metadata: { A: "b" } } };
    const get = (path: string) => resolveProperty(path.split("."), plugin, view, undefined);
    const text = (path: string) => {
      const v = get(path);
      return v === undefined ? undefined : new TextDecoder().decode(v);
    };
    const int = (path: string) => new DataView(get(path)!.buffer).getBigInt64(0, true);
    expect(text("request.path")).toBe("/a/b?x=1");
    expect(text("request.url_path")).toBe("/a/b");
    expect(text("request.host")).toBe("svc");
    expect(text("request.method")).toBe("POST");
    expect(text("request.scheme")).toBe("https");
    expect(text("request.id")).toBe("rid-1");
    expect(text("request.protocol")).toBe("HTTP/2");
    expect(text("request.headers.x-h")).toBe("v");
    expect(decodePairs(get("request.headers")!)).toEqual(view.requestHeaders!);
    expect(int("request.time")).toBe(1_700_000_000_000n * 1_000_000n);
    expect(int("request.size")).toBe(11n);
    expect(int("request.total_size")).toBe(11n + BigInt(pairsByteSize(view.requestHeaders!)));
    expect(text("source.address")).toBe("10.0.0.1:4242");
    expect(int("source.port")).toBe(4242n);
    expect(text("source.principal")).toBe("spiffe://cluster.local/ns/a/sa/b");
    expect(text("destination.address")).toBe("[fd00::1]:8080");
    expect(get("connection.mtls")).toEqual(new Uint8Array([1]));
    expect(int("connection.id")).toBe(7n);
    expect(text("connection.requested_server_name")).toBe("svc.local");
    expect(int("response.code")).toBe(201n);
    expect(text("response.code_details")).toBe("via_upstream");
    expect(int("response.flags")).toBe(0n);
    expect(text("plugin_name")).toBe("ns.p");
    expect(text("plugin_root_id")).toBe("root");
    expect(text("plugin_vm_id")).toBe("vm");
    expect(text("node.id")).toBe("n1");
    expect(text("node.metadata.A")).toBe("b");
    expect(text("xds.cluster_name")).toBe("outbound|80||svc");
    expect(get("nope.nothing")).toBeUndefined();
    // known at the end: the endpoint that answered, the route and cluster
    const ended: StreamView = {
      ...view,
      completion: { upstream: { address: "10.1.2.3", port: 8080, principal: "spiffe://cluster.local/ns/a/sa/app", tlsVersion: "TLSv1.3" }, extra: { "xds.cluster_name": "inbound-vip|80|http|svc" } },
      props: { ...view.props, extra: {} },
    };
    const atEnd = (path: string) => resolveProperty(path.split("."), plugin, ended, undefined);
    expect(new TextDecoder().decode(atEnd("upstream.address"))).toBe("10.1.2.3:8080");
    expect(new DataView(atEnd("upstream.port")!.buffer).getBigInt64(0, true)).toBe(8080n);
    expect(new TextDecoder().decode(atEnd("upstream.uri_san_peer_certificate"))).toBe("spiffe://cluster.local/ns/a/sa/app");
    expect(new TextDecoder().decode(atEnd("upstream.tls_version"))).toBe("TLSv1.3");
    expect(new TextDecoder().decode(atEnd("xds.cluster_name"))).toBe("inbound-vip|80|http|svc");
    expect(get("upstream.address")).toBeUndefined(); // not before the request is over
    // the access log's short form becomes Envoy's bitmask
    const flags = (f: string) => new DataView(resolveProperty(["response", "flags"], plugin, { ...view, completion: { responseFlags: f } }, undefined)!.buffer).getBigInt64(0, true);
    expect(flags("UF,URX")).toBe(0x8020n);
    expect(flags("UT")).toBe(0x4n);
    expect(flags("-")).toBe(0n);
    // root contexts see plugin-level attributes only
    expect(resolveProperty(["request", "path"], plugin, undefined, undefined)).toBeUndefined();
    expect(resolveProperty(["plugin_root_id"], plugin, undefined, undefined)).toBeDefined();
  });
});
