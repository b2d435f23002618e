import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MeshError } from "../errors/index.ts";
import { parseDestinationRules } from "./destination-rule.ts";

const dir = mkdtempSync(join(tmpdir(), "dr-"));
writeFileSync(join(dir, "ca.pem"), "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
writeFileSync(join(dir, "junk.pem"), "not a certificate");
const file = join(dir, "routes.yaml");

function rule(tls: string, extra = ""): string {
  return `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r, namespace: default}\nspec:\n  host: api.example.com\n  trafficPolicy:\n    tls: ${tls}\n${extra}`;
}

function problems(text: string): string[] {
  try {
    parseDestinationRules(text, file);
  } catch (e) {
    return [...(e as MeshError).details];
  }
  return [];
}

describe("DestinationRule (egress TLS)", () => {
  test("SIMPLE with sni and a CA file relative to the routes file", () => {
    const [r] = parseDestinationRules(rule("{mode: SIMPLE, sni: api.example.com, caCertificates: ca.pem}"), file);
    expect(r).toMatchObject({ key: "default/r", host: "api.example.com", tls: { sni: "api.example.com" } });
    expect(r!.tls!.caPem).toContain("BEGIN CERTIFICATE");
  });

  test("DISABLE and ISTIO_MUTUAL mean no TLS from the waypoint (mesh traffic is HBONE)", () => {
    expect(parseDestinationRules(rule("{mode: DISABLE}"), file)[0]!.tls).toBeUndefined();
    expect(parseDestinationRules(rule("{mode: ISTIO_MUTUAL}"), file)[0]!.tls).toBeUndefined();
  });

  test("other kinds in the file are skipped", () => {
    expect(parseDestinationRules("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n", file)).toEqual([]);
  });

  test("what cannot be honoured is an error naming the field", () => {
    expect(problems(rule("{mode: SIMPLE, insecureSkipVerify: true}")).join("\n")).toContain("insecureSkipVerify");
    expect(problems(rule("{mode: MUTUAL}")).join("\n")).toContain("MUTUAL is not supported");
    expect(problems(rule("{mode: SIMPLE, caCertificates: missing.pem}")).join("\n")).toContain("caCertificates");
    expect(problems(rule("{mode: SIMPLE, caCertificates: junk.pem}")).join("\n")).toContain("no PEM certificate");
    expect(problems(rule("{mode: SIMPLE, bogus: 1}")).join("\n")).toContain("bogus");
  });
});
