// Text assets embedded in the binary with `import x from "./f.yaml" with { type: "text" }`.
declare module "*.yaml" {
  const text: string;
  export default text;
}
