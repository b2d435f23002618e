// ztunnel's local config is read by serde_yaml 0.9, which writes externally tagged enums such as
// the policy StringMatch as YAML tags: `!Exact v`, `!Prefix v`, `!Suffix v`, `!Presence []`.
// These custom tags make the `yaml` package resolve them into TaggedMatch values instead of
// warning about unknown tags.

import type { CollectionTag, ScalarTag } from "yaml";

export type StringMatchKind = "Exact" | "Prefix" | "Suffix" | "Presence";

export const STRING_MATCH_KINDS: readonly StringMatchKind[] = ["Exact", "Prefix", "Suffix", "Presence"];

/** A tagged StringMatch as written in the file. */
export class TaggedMatch {
  constructor(
    readonly kind: StringMatchKind,
    /** The scalar after the tag; undefined when the tag was applied to a collection. */
    readonly value: string | undefined,
    /** Items when the tag was applied to a sequence (only `!Presence []` is valid). */
    readonly items: readonly unknown[] | undefined,
  ) {}

  /** serde_json's form of the enum, what ztunnel's config_dump shows. */
  toJSON(): Record<string, unknown> {
    return { [this.kind]: this.kind === "Presence" ? [] : (this.value ?? null) };
  }
}

function scalarTag(kind: StringMatchKind): ScalarTag {
  return {
    tag: `!${kind}`,
    identify: (v) => v instanceof TaggedMatch && v.kind === kind,
    resolve: (value: string) => new TaggedMatch(kind, value, undefined),
  };
}

function seqTag(kind: StringMatchKind): CollectionTag {
  return {
    tag: `!${kind}`,
    collection: "seq",
    identify: () => false,
    resolve: (seq) => new TaggedMatch(kind, undefined, seq.items),
  };
}

/** Custom tags for `yaml`'s parse options. Sequences are accepted so `!Presence []` resolves. */
export const stringMatchTags: readonly (ScalarTag | CollectionTag)[] = STRING_MATCH_KINDS.flatMap((k) => [
  scalarTag(k),
  seqTag(k),
]);
