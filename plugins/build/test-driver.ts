// TEST FIXTURE for plugins/build/*.test.ts — NOT the product Proxy-Wasm host (that is `wasm/`).
//
// A minimal, synchronous driver that instantiates one plugin module, implements just the host
// functions the example and test plugins import (reference/waypoint.md §A.5, §A.6), records every
// hostcall, and lets a test invoke callbacks one by one. It forwards no traffic and defers nothing:
// local responses, continues and callouts are only recorded for assertions. Any import it does not
// implement fails instantiation, so a plugin importing more than expected is caught too.

export type HeaderList = [string, string][];

export const Status = {
  OK: 0,
  NOT_FOUND: 1,
  BAD_ARGUMENT: 2,
  INVALID_MEMORY_ACCESS: 6,
  UNIMPLEMENTED: 12,
} as const;

export const MapType = { REQUEST_HEADERS: 0, RESPONSE_HEADERS: 2, HTTP_CALL_RESPONSE_HEADERS: 6 } as const;
export const BufferType = { HTTP_REQUEST_BODY: 0, HTTP_CALL_RESPONSE_BODY: 4, VM_CONFIGURATION: 6, PLUGIN_CONFIGURATION: 7 } as const;

// ---- module shape -------------------------------------------------------------------------------

export type ValType = "i32" | "i64" | "f32" | "f64" | "v128" | "funcref" | "externref";
export interface FuncSig {
  params: ValType[];
  results: ValType[];
}
export interface ModuleShape {
  imports: Map<string, FuncSig>; // "module.name" → signature (functions only)
  exports: Map<string, FuncSig | "memory" | "table" | "global">;
  memory: { initialPages: number; maximumPages: number | undefined } | undefined;
  hasStartSection: boolean;
}

const VALTYPES: Record<number, ValType> = { 0x7f: "i32", 0x7e: "i64", 0x7d: "f32", 0x7c: "f64", 0x7b: "v128", 0x70: "funcref", 0x6f: "externref" };

/** Reads the type/import/function/memory/export/start sections of a binary module. */
export function readModuleShape(wasm: Uint8Array): ModuleShape {
  let pos = 8;
  const u32 = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const byte = wasm[pos++] as number;
      result |= (byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result >>> 0;
      shift += 7;
    }
  };
  const name = (): string => {
    const len = u32();
    const s = new TextDecoder().decode(wasm.subarray(pos, pos + len));
    pos += len;
    return s;
  };
  const valtype = (): ValType => VALTYPES[wasm[pos++] as number] ?? "i32";
  const limits = (): { initialPages: number; maximumPages: number | undefined } => {
    const flags = u32();
    const initialPages = u32();
    return { initialPages, maximumPages: flags & 1 ? u32() : undefined };
  };

  const types: FuncSig[] = [];
  const funcTypes: number[] = []; // type index per function index (imports first)
  const shape: ModuleShape = { imports: new Map(), exports: new Map(), memory: undefined, hasStartSection: false };
  const exportsRaw: [string, number, number][] = [];
  while (pos < wasm.length) {
    const id = wasm[pos++] as number;
    const size = u32();
    const end = pos + size;
    if (id === 1) {
      for (let n = u32(); n > 0; n--) {
        pos++; // 0x60
        const params = Array.from({ length: u32() }, valtype);
        const results = Array.from({ length: u32() }, valtype);
        types.push({ params, results });
      }
    } else if (id === 2) {
      for (let n = u32(); n > 0; n--) {
        const mod = name();
        const field = name();
        const kind = wasm[pos++] as number;
        if (kind === 0) {
          const t = u32();
          funcTypes.push(t);
          shape.imports.set(`${mod}.${field}`, types[t] as FuncSig);
        } else if (kind === 1) {
          pos++;
          limits();
        } else if (kind === 2) {
          limits();
        } else {
          pos += 2; // global: valtype + mutability
        }
      }
    } else if (id === 3) {
      for (let n = u32(); n > 0; n--) funcTypes.push(u32());
    } else if (id === 5) {
      if (u32() > 0) shape.memory = limits();
    } else if (id === 7) {
      for (let n = u32(); n > 0; n--) {
        const exportName = name();
        const kind = wasm[pos++] as number;
        exportsRaw.push([exportName, kind, u32()]);
      }
    } else if (id === 8) {
      shape.hasStartSection = true;
    }
    pos = end;
  }
  for (const [exportName, kind, index] of exportsRaw) {
    if (kind === 0) shape.exports.set(exportName, types[funcTypes[index] as number] as FuncSig);
    else shape.exports.set(exportName, kind === 1 ? "table" : kind === 2 ? "memory" : "global");
  }
  return shape;
}

const sig = (params: string, results = "i32"): FuncSig => ({
  params: (params === "" ? [] : params.split(",")) as ValType[],
  results: (results === "" ? [] : [results]) as ValType[],
});

/** Signatures from the Proxy-Wasm ABI 0.2.x (reference §A.4/§A.5) for everything these plugins use. */
export const ABI_SIGNATURES: Record<string, FuncSig> = {
  // host functions
  "env.proxy_log": sig("i32,i32,i32"),
  "env.proxy_get_property": sig("i32,i32,i32,i32"),
  "env.proxy_get_buffer_bytes": sig("i32,i32,i32,i32,i32"),
  "env.proxy_set_buffer_bytes": sig("i32,i32,i32,i32,i32"),
  "env.proxy_set_effective_context": sig("i32"),
  "env.proxy_add_header_map_value": sig("i32,i32,i32,i32,i32"),
  "env.proxy_replace_header_map_value": sig("i32,i32,i32,i32,i32"),
  "env.proxy_get_header_map_value": sig("i32,i32,i32,i32,i32"),
  "env.proxy_remove_header_map_value": sig("i32,i32,i32"),
  "env.proxy_send_local_response": sig("i32,i32,i32,i32,i32,i32,i32,i32"),
  "env.proxy_continue_stream": sig("i32"),
  "env.proxy_http_call": sig("i32,i32,i32,i32,i32,i32,i32,i32,i32,i32"),
  "env.proxy_define_metric": sig("i32,i32,i32,i32"),
  "env.proxy_increment_metric": sig("i32,i64"),
  "wasi_unstable.proc_exit": sig("i32", ""),
  // module callbacks
  malloc: sig("i32"),
  proxy_abi_version_0_2_0: sig("", ""),
  proxy_abi_version_0_2_1: sig("", ""),
  proxy_on_context_create: sig("i32,i32", ""),
  proxy_on_vm_start: sig("i32,i32"),
  proxy_on_configure: sig("i32,i32"),
  proxy_on_tick: sig("i32", ""),
  proxy_on_request_headers: sig("i32,i32,i32"),
  proxy_on_request_body: sig("i32,i32,i32"),
  proxy_on_request_trailers: sig("i32,i32"),
  proxy_on_response_headers: sig("i32,i32,i32"),
  proxy_on_response_body: sig("i32,i32,i32"),
  proxy_on_response_trailers: sig("i32,i32"),
  proxy_on_http_call_response: sig("i32,i32,i32,i32,i32", ""),
  proxy_on_done: sig("i32"),
  proxy_on_log: sig("i32", ""),
  proxy_on_delete: sig("i32", ""),
};

// ---- pairs (A.6) --------------------------------------------------------------------------------

export function encodePairs(pairs: HeaderList): Uint8Array {
  const enc = new TextEncoder();
  const encoded = pairs.map(([k, v]) => [enc.encode(k), enc.encode(v)] as const);
  const size = 4 + encoded.reduce((n, [k, v]) => n + 8 + k.length + v.length + 2, 0);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, pairs.length, true);
  let off = 4;
  for (const [k, v] of encoded) {
    view.setUint32(off, k.length, true);
    view.setUint32(off + 4, v.length, true);
    off += 8;
  }
  for (const [k, v] of encoded) {
    out.set(k, off);
    off += k.length + 1;
    out.set(v, off);
    off += v.length + 1;
  }
  return out;
}

export function decodePairs(bytes: Uint8Array): HeaderList {
  if (bytes.length <= 1) return [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getUint32(0, true);
  const dec = new TextDecoder();
  const out: HeaderList = [];
  let data = 4 + n * 8;
  for (let i = 0; i < n; i++) {
    const kl = view.getUint32(4 + i * 8, true);
    const vl = view.getUint32(8 + i * 8, true);
    const k = dec.decode(bytes.subarray(data, data + kl));
    data += kl + 1;
    const v = dec.decode(bytes.subarray(data, data + vl));
    data += vl + 1;
    out.push([k, v]);
  }
  if (data !== bytes.length) throw new Error(`pairs: ${bytes.length - data} trailing bytes`);
  return out;
}

// ---- the driver -----------------------------------------------------------------------------------

export class ProcExit extends Error {
  constructor(readonly exitCode: number) {
    super(`plugin called proc_exit(${exitCode})`);
  }
}

export interface LocalResponse {
  context: number;
  status: number;
  details: string;
  body: string;
  headers: HeaderList;
  grpcStatus: number;
}

export interface HttpCall {
  context: number;
  token: number;
  upstream: string;
  headers: HeaderList;
  body: string;
  trailers: HeaderList;
  timeoutMs: number;
}

export interface DriverOptions {
  rootId: string;
  /** Properties served by proxy_get_property besides plugin_root_id. */
  properties?: Record<string, string>;
  /** Make proxy_define_metric fail with this status (a host without metrics). */
  metricsStatus?: number;
}

type Imports = Record<string, Record<string, (...args: never[]) => unknown>>;

export class AbiDriver {
  readonly instance: WebAssembly.Instance;
  readonly shape: ModuleShape;
  readonly logs: { level: number; message: string }[] = [];
  readonly hostcalls: string[] = [];
  readonly maps = new Map<number, HeaderList>();
  readonly buffers = new Map<number, Uint8Array>();
  readonly localResponses: LocalResponse[] = [];
  readonly httpCalls: HttpCall[] = [];
  readonly continued: { context: number; stream: number }[] = [];
  readonly metrics = new Map<number, { type: number; name: string; value: bigint }>();
  readonly effectiveContexts: number[] = [];
  private current = 0;
  private effective = 0;
  private nextToken = 4;

  private constructor(wasm: Uint8Array, private readonly opts: DriverOptions) {
    this.shape = readModuleShape(wasm);
    const module = new WebAssembly.Module(wasm);
    const imports: Imports = {};
    for (const imp of WebAssembly.Module.imports(module)) {
      const impl = this.hostFunction(imp.module, imp.name);
      if (impl === undefined) throw new Error(`fixture driver does not implement import ${imp.module}.${imp.name}`);
      const wrapped = (...args: never[]): unknown => {
        this.hostcalls.push(imp.name);
        return impl(...args);
      };
      (imports[imp.module] ??= {})[imp.name] = wrapped;
    }
    // AssemblyScript modules run their top-level code (registerRootContext) from the start section here.
    this.instance = new WebAssembly.Instance(module, imports as Bun.WebAssembly.Imports);
  }

  static create(wasm: Uint8Array, opts: DriverOptions): AbiDriver {
    return new AbiDriver(wasm, opts);
  }

  // -- callbacks ----------------------------------------------------------------------------------

  /** Calls export `name` with `context` as the current (and effective) context; undefined if absent. */
  call(name: string, ...args: number[]): number | undefined {
    const fn = this.instance.exports[name];
    if (typeof fn !== "function") return undefined;
    const [saveCurrent, saveEffective] = [this.current, this.effective];
    this.current = this.effective = args[0] ?? 0;
    try {
      const r = (fn as (...a: number[]) => number | undefined)(...args);
      return r === undefined ? undefined : r >>> 0;
    } finally {
      [this.current, this.effective] = [saveCurrent, saveEffective];
    }
  }

  /** create(root) → vm_start → configure; returns proxy_on_configure's result. */
  startRoot(root: number, pluginConfig: string): boolean {
    this.call("proxy_on_context_create", root, 0);
    this.buffers.set(BufferType.VM_CONFIGURATION, new Uint8Array(0));
    if (this.call("proxy_on_vm_start", root, 0) !== 1) return false;
    return this.configure(root, pluginConfig);
  }

  configure(root: number, pluginConfig: string): boolean {
    const bytes = new TextEncoder().encode(pluginConfig);
    this.buffers.set(BufferType.PLUGIN_CONFIGURATION, bytes);
    try {
      return this.call("proxy_on_configure", root, bytes.length) === 1;
    } finally {
      this.buffers.delete(BufferType.PLUGIN_CONFIGURATION);
    }
  }

  requestHeaders(stream: number, headers: HeaderList, endOfStream = true): number | undefined {
    this.maps.set(MapType.REQUEST_HEADERS, headers.map(([k, v]) => [k, v]));
    return this.call("proxy_on_request_headers", stream, headers.length, endOfStream ? 1 : 0);
  }

  responseHeaders(stream: number, headers: HeaderList, endOfStream = true): number | undefined {
    this.maps.set(MapType.RESPONSE_HEADERS, headers.map(([k, v]) => [k, v]));
    return this.call("proxy_on_response_headers", stream, headers.length, endOfStream ? 1 : 0);
  }

  /** Delivers a callout response to the root; headers [] means the callout failed. */
  httpCallResponse(root: number, token: number, headers: HeaderList, body = ""): void {
    const bytes = new TextEncoder().encode(body);
    this.maps.set(MapType.HTTP_CALL_RESPONSE_HEADERS, headers);
    this.buffers.set(BufferType.HTTP_CALL_RESPONSE_BODY, bytes);
    try {
      this.call("proxy_on_http_call_response", root, token, headers.length, bytes.length, 0);
    } finally {
      this.maps.delete(MapType.HTTP_CALL_RESPONSE_HEADERS);
      this.buffers.delete(BufferType.HTTP_CALL_RESPONSE_BODY);
    }
  }

  finishStream(stream: number): void {
    this.call("proxy_on_done", stream);
    this.call("proxy_on_log", stream);
    this.call("proxy_on_delete", stream);
  }

  header(map: number, name: string): string | undefined {
    return this.maps.get(map)?.find(([k]) => k === name)?.[1];
  }

  headerValues(map: number, name: string): string[] {
    return (this.maps.get(map) ?? []).filter(([k]) => k === name).map(([, v]) => v);
  }

  infoLogs(prefix: string): string[] {
    return this.logs.filter((l) => l.level === 2 && l.message.startsWith(prefix)).map((l) => l.message);
  }

  // -- memory -------------------------------------------------------------------------------------

  private bytes(): Uint8Array {
    return new Uint8Array((this.instance.exports.memory as WebAssembly.Memory).buffer);
  }

  private read(ptr: number, len: number): Uint8Array {
    return this.bytes().slice(ptr >>> 0, (ptr >>> 0) + (len >>> 0));
  }

  private readString(ptr: number, len: number): string {
    return new TextDecoder().decode(this.read(ptr, len));
  }

  private writeU32(ptr: number, value: number): void {
    new DataView(this.bytes().buffer).setUint32(ptr >>> 0, value >>> 0, true);
  }

  /** Copies data into module memory via its malloc and writes (ptr, size) to the out-pointers. */
  private copyOut(data: Uint8Array, retPtr: number, retSize: number): number {
    if (data.length === 0) {
      this.writeU32(retPtr, 0);
      this.writeU32(retSize, 0);
      return Status.OK;
    }
    const malloc = this.instance.exports.malloc as (n: number) => number;
    const ptr = malloc(data.length) >>> 0;
    if (ptr === 0) return Status.INVALID_MEMORY_ACCESS;
    this.bytes().set(data, ptr); // re-read memory: malloc may have grown it
    this.writeU32(retPtr, ptr);
    this.writeU32(retSize, data.length);
    return Status.OK;
  }

  // -- host functions ------------------------------------------------------------------------------

  private hostFunction(module: string, name: string): ((...args: never[]) => unknown) | undefined {
    if (module === "wasi_unstable" && name === "proc_exit") {
      return (code: number) => {
        throw new ProcExit(code);
      };
    }
    if (module !== "env") return undefined;
    const enc = new TextEncoder();
    const h: Record<string, (...args: never[]) => unknown> = {
      proxy_log: (level: number, ptr: number, len: number) => {
        this.logs.push({ level, message: this.readString(ptr, len) });
        return Status.OK;
      },
      proxy_get_property: (pathPtr: number, pathLen: number, retPtr: number, retSize: number) => {
        const path = this.readString(pathPtr, pathLen).replace(/\0$/, "").split("\0").join(".");
        const value = path === "plugin_root_id" ? this.opts.rootId : this.opts.properties?.[path];
        if (value === undefined) return Status.NOT_FOUND;
        return this.copyOut(enc.encode(value), retPtr, retSize);
      },
      proxy_get_buffer_bytes: (type: number, start: number, max: number, retPtr: number, retSize: number) => {
        const buffer = this.buffers.get(type);
        if (buffer === undefined) return Status.NOT_FOUND;
        return this.copyOut(buffer.subarray(start >>> 0, (start >>> 0) + (max >>> 0)), retPtr, retSize);
      },
      proxy_set_buffer_bytes: (type: number, start: number, size: number, dataPtr: number, dataLen: number) => {
        const buffer = this.buffers.get(type);
        if (buffer === undefined) return Status.NOT_FOUND;
        const data = this.read(dataPtr, dataLen);
        const s = start >>> 0;
        // Envoy's two supported forms: replace a prefix (start 0) or append (start ≥ length).
        if (s >= buffer.length) this.buffers.set(type, concat(buffer, data));
        else if (s === 0) this.buffers.set(type, concat(data, buffer.subarray(Math.min(size >>> 0, buffer.length))));
        else return Status.BAD_ARGUMENT;
        return Status.OK;
      },
      proxy_set_effective_context: (id: number) => {
        this.effective = id;
        this.effectiveContexts.push(id);
        return Status.OK;
      },
      proxy_add_header_map_value: (type: number, kp: number, kl: number, vp: number, vl: number) => {
        const map = this.maps.get(type);
        if (map === undefined) return Status.BAD_ARGUMENT;
        map.push([this.readString(kp, kl).toLowerCase(), this.readString(vp, vl)]);
        return Status.OK;
      },
      proxy_replace_header_map_value: (type: number, kp: number, kl: number, vp: number, vl: number) => {
        const map = this.maps.get(type);
        if (map === undefined) return Status.BAD_ARGUMENT;
        const key = this.readString(kp, kl).toLowerCase();
        const rest = map.filter(([k]) => k !== key);
        map.length = 0;
        map.push(...rest, [key, this.readString(vp, vl)]);
        return Status.OK;
      },
      proxy_remove_header_map_value: (type: number, kp: number, kl: number) => {
        const map = this.maps.get(type);
        if (map === undefined) return Status.BAD_ARGUMENT;
        const key = this.readString(kp, kl).toLowerCase();
        const rest = map.filter(([k]) => k !== key);
        map.length = 0;
        map.push(...rest);
        return Status.OK;
      },
      proxy_get_header_map_value: (type: number, kp: number, kl: number, retPtr: number, retSize: number) => {
        const map = this.maps.get(type);
        if (map === undefined) return Status.BAD_ARGUMENT;
        const key = this.readString(kp, kl).toLowerCase();
        const found = map.find(([k]) => k === key);
        if (found === undefined) return Status.NOT_FOUND;
        return this.copyOut(enc.encode(found[1]), retPtr, retSize);
      },
      proxy_send_local_response: (
        status: number, dp: number, dl: number, bp: number, bl: number, hp: number, hl: number, grpc: number,
      ) => {
        this.localResponses.push({
          context: this.effective,
          status,
          details: this.readString(dp, dl),
          body: this.readString(bp, bl),
          headers: decodePairs(this.read(hp, hl)),
          grpcStatus: grpc | 0,
        });
        return Status.OK;
      },
      proxy_continue_stream: (stream: number) => {
        this.continued.push({ context: this.effective, stream });
        return Status.OK;
      },
      proxy_http_call: (
        up: number, ul: number, hp: number, hl: number, bp: number, bl: number, tp: number, tl: number,
        timeout: number, tokenPtr: number,
      ) => {
        const token = this.nextToken;
        this.nextToken += 4;
        this.httpCalls.push({
          context: this.effective,
          token,
          upstream: this.readString(up, ul),
          headers: decodePairs(this.read(hp, hl)),
          body: this.readString(bp, bl),
          trailers: decodePairs(this.read(tp, tl)),
          timeoutMs: timeout >>> 0,
        });
        this.writeU32(tokenPtr, token);
        return Status.OK;
      },
      proxy_define_metric: (type: number, np: number, nl: number, idPtr: number) => {
        if (this.opts.metricsStatus !== undefined) return this.opts.metricsStatus;
        const metricName = this.readString(np, nl);
        let id = [...this.metrics].find(([, m]) => m.name === metricName)?.[0];
        if (id === undefined) {
          id = this.metrics.size + 1;
          this.metrics.set(id, { type, name: metricName, value: 0n });
        }
        this.writeU32(idPtr, id);
        return Status.OK;
      },
      proxy_increment_metric: (id: number, delta: bigint) => {
        const metric = this.metrics.get(id);
        if (metric === undefined) return Status.NOT_FOUND;
        metric.value += delta;
        return Status.OK;
      },
    };
    return h[name];
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
