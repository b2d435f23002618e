// System resolver, for names that are not mesh service hostnames.
import { lookup } from "node:dns/promises";

export async function resolveHost(name: string): Promise<string> {
  return (await lookup(name)).address;
}
