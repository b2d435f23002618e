// The shared Kubernetes YAML reader: document loop, error lines, limits and message styles.
import { describe, expect, test } from "bun:test";
import { ErrorCodes, isMeshError, type MeshError } from "../errors/index.ts";
import { describeValue, readKubernetesDocuments, readList, readMap, readString, type DocProblems } from "./k8s-read.ts";

interface Thing {
  readonly key: string;
  readonly source: string;
  readonly size?: number;
}

function readThing(v: unknown, p: DocProblems): Thing | undefined {
  const o = readMap(v, "", p, "a Thing");
  if (!o) return undefined;
  if (o.kind !== "Thing") return undefined; // another kind: skipped
  const meta = readMap(o.metadata, "metadata", p);
  const name = meta ? readString(meta, "name", "metadata", p, { required: true }) : undefined;
  if (name) p.name(name);
  const spec = readMap(o.spec, "spec", p);
  const items = spec ? readList(spec.items, "spec.items", p, { what: "items", max: 2 }) : undefined;
  if (!name || p.count() > 0) return undefined;
  return { key: name, source: p.source, ...(items ? { size: items.length } : {}) };
}

function errorsOf(text: string, opts: Parameters<typeof readKubernetesDocuments>[2] = { kind: "Thing" }): MeshError {
  try {
    readKubernetesDocuments(text, "things.yaml", opts, readThing);
  } catch (e) {
    if (isMeshError(e)) return e;
    throw e;
  }
  throw new Error("expected an error");
}

describe("readKubernetesDocuments", () => {
  test("reads every document, skips other kinds and empty documents", () => {
    const out = readKubernetesDocuments(
      "kind: Thing\nmetadata: {name: a}\nspec: {items: [1]}\n---\nkind: Service\nmetadata: {name: s}\n---\n---\nkind: Thing\nmetadata: {name: b}\nspec: {}\n",
      "things.yaml",
      { kind: "Thing" },
      readThing,
    );
    expect(out).toEqual([
      { key: "a", source: "things.yaml: document 1 (a)", size: 1 },
      { key: "b", source: "things.yaml: document 4 (b)" },
    ]);
  });

  test("every problem of every document is collected, with document, name and field path", () => {
    const e = errorsOf("kind: Thing\nmetadata: {name: a}\nspec: {items: [1, 2, 3]}\n---\nkind: Thing\nmetadata: {}\nspec: 7\n");
    expect(e.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(e.message).toBe("things.yaml: 3 problems in Thing documents");
    expect(e.details).toEqual([
      "things.yaml: document 1 (a): spec.items: at most 2 items are allowed, got 3",
      "things.yaml: document 2: metadata.name: required",
      "things.yaml: document 2: spec: expected a map, got the number 7",
    ]);
  });

  test("duplicates are named with the configured noun", () => {
    const e = errorsOf("kind: Thing\nmetadata: {name: a}\nspec: {}\n---\nkind: Thing\nmetadata: {name: a}\nspec: {}\n", { kind: "Thing", duplicateName: "thing" });
    expect(e.details).toEqual(["things.yaml: document 2 (a): duplicate thing a (also defined by things.yaml: document 1 (a))"]);
  });

  test("YAML syntax errors are CONFIG_PARSE with line and column", () => {
    const e = errorsOf("kind: Thing\nmetadata: {name: a\n");
    expect(e.code).toBe(ErrorCodes.CONFIG_PARSE);
    expect(e.details[0]).toMatch(/^things\.yaml: document 1: line \d+, column \d+: /);
  });

  test("too many documents is one error and nothing is read", () => {
    const e = errorsOf("kind: Thing\n---\nkind: Thing\n---\nkind: Thing\n", { kind: "Thing", maxDocuments: 2 });
    expect(e.message).toBe("things.yaml: at most 2 documents per file, got 3");
  });

  test("string values are described quoted (truncated) or labelled", () => {
    expect(describeValue("x".repeat(100))).toBe(JSON.stringify(`${"x".repeat(80)}…`));
    expect(describeValue("abc", "labelled")).toBe('the string "abc"');
    expect(describeValue(7)).toBe("the number 7");
  });
});
