// YAML text -> a small tree the validators walk. Working on the tree rather than on `toJS()`
// output keeps what the file said: the source text of scalars (serde_yaml reads `name: 123` as
// the string "123"), whether a scalar was quoted, and tags the schema does not know.

import { isAlias, isMap, isScalar, isSeq, parseDocument, type Document, type Node } from "yaml";
import { ErrorCodes, MeshError } from "../errors/index.ts";
import { STRING_MATCH_KINDS, TaggedMatch, stringMatchTags, type StringMatchKind } from "./yaml-tags.ts";

export type ScalarValue = string | number | boolean | bigint | null;

export type YNode =
  | { readonly kind: "map"; readonly entries: readonly YEntry[] }
  | { readonly kind: "seq"; readonly items: readonly YNode[] }
  | { readonly kind: "scalar"; readonly value: ScalarValue; readonly source: string; readonly quoted: boolean }
  | { readonly kind: "tagged"; readonly tag: string; readonly value: YNode };

export interface YEntry {
  /** The key as text; undefined when the key is a collection (never valid here). */
  readonly key: string | undefined;
  readonly value: YNode;
}

export interface ParsedYaml {
  /** undefined for an empty document. */
  readonly root: YNode | undefined;
  /** Plain JS form of the document, for config_dump. */
  readonly raw: unknown;
}

const CORE_TAG_PREFIX = "tag:yaml.org,2002:";
/** Bounds alias expansion while walking (a "billion laughs" file must not hang the loader). */
const MAX_EXPANDED_NODES = 1_000_000;

const EMPTY_SCALAR: YNode = { kind: "scalar", value: null, source: "", quoted: false };

export function isMatchKind(tag: string): tag is StringMatchKind {
  return (STRING_MATCH_KINDS as readonly string[]).includes(tag);
}

class TreeBuilder {
  private expanded = 0;
  private readonly active = new Set<unknown>();

  constructor(
    private readonly doc: Document,
    private readonly fileName: string,
  ) {}

  build(node: unknown): YNode {
    if (++this.expanded > MAX_EXPANDED_NODES) {
      throw new MeshError(ErrorCodes.CONFIG_PARSE, `${this.fileName}: document too large after alias expansion`);
    }
    if (node === null || node === undefined) return EMPTY_SCALAR;
    if (isAlias(node)) {
      const target = node.resolve(this.doc);
      if (target === undefined || this.active.has(target)) {
        throw new MeshError(ErrorCodes.CONFIG_PARSE, `${this.fileName}: alias *${node.source} is undefined or recursive`);
      }
      this.active.add(target);
      try {
        return this.build(target);
      } finally {
        this.active.delete(target);
      }
    }
    const n = node as Node;
    const inner = this.buildUntagged(n);
    const tag = n.tag;
    if (tag === undefined || tag.startsWith(CORE_TAG_PREFIX)) return inner;
    return { kind: "tagged", tag: tag.replace(/^!/, ""), value: inner };
  }

  private buildUntagged(n: Node): YNode {
    if (isMap(n)) {
      const entries: YEntry[] = [];
      for (const pair of n.items) {
        const k = pair.key;
        let key: string | undefined;
        if (k === null || k === undefined) key = "";
        else if (isScalar(k)) key = k.value === null ? "" : String(k.value);
        else key = undefined;
        entries.push({ key, value: this.build(pair.value) });
      }
      return { kind: "map", entries };
    }
    if (isSeq(n)) return { kind: "seq", items: n.items.map((i) => this.build(i)) };
    if (isScalar(n)) {
      const v = n.value;
      if (v instanceof TaggedMatch) {
        // Our custom tags resolved this node: undo the wrapping so the schema sees tag + value.
        const value: YNode =
          v.items !== undefined
            ? { kind: "seq", items: v.items.map((i) => this.build(i)) }
            : { kind: "scalar", value: v.value ?? null, source: v.value ?? "", quoted: n.type !== "PLAIN" };
        return value;
      }
      const source = typeof n.source === "string" ? n.source : String(v);
      const quoted = n.type === "QUOTE_DOUBLE" || n.type === "QUOTE_SINGLE" || n.type === "BLOCK_LITERAL" || n.type === "BLOCK_FOLDED";
      if (v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") {
        return { kind: "scalar", value: v, source, quoted };
      }
      // Core-schema types only produce the above; anything else is treated as its text.
      return { kind: "scalar", value: String(v), source, quoted };
    }
    return EMPTY_SCALAR;
  }
}

function position(e: { linePos?: readonly { line: number; col: number }[] }): string {
  const p = e.linePos?.[0];
  return p ? `${p.line}:${p.col}` : "";
}

/**
 * Parses one YAML document. Syntax errors (and duplicate keys, multiple documents) throw
 * MeshError CONFIG_PARSE naming `file:line:column`.
 */
export function parseYamlTree(text: string, fileName: string): ParsedYaml {
  const doc = parseDocument(text, {
    customTags: [...stringMatchTags],
    uniqueKeys: true,
    prettyErrors: true,
    strict: true,
  });
  if (doc.errors.length > 0) {
    const heads: string[] = [];
    const details: string[] = [];
    for (const e of doc.errors) {
      const where = position(e);
      const [first = e.message, ...context] = e.message.split("\n");
      const head = `${fileName}${where ? `:${where}` : ""}: ${first.replace(/ at line \d+, column \d+:?$/, "")}`;
      heads.push(head);
      if (doc.errors.length > 1) details.push(head);
      // The source excerpt with a caret under the problem.
      for (const c of context) if (c.trim() !== "") details.push(`  ${c}`);
    }
    const msg = heads.length === 1 ? heads[0]! : `${heads[0]!} (and ${heads.length - 1} more)`;
    throw new MeshError(ErrorCodes.CONFIG_PARSE, msg, { details });
  }
  // Warnings (unknown tags) are not reported here: the validators report them with the field path.
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 1000 });
  } catch (e) {
    throw new MeshError(ErrorCodes.CONFIG_PARSE, `${fileName}: ${(e as Error).message}`, { cause: e });
  }
  if (doc.contents === null) return { root: undefined, raw: raw ?? null };
  const root = new TreeBuilder(doc, fileName).build(doc.contents);
  return { root, raw };
}
