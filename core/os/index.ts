// The native seam: every bun:ffi call the mesh makes goes through this folder.
export { errnoText, libc, cpuClock, type Libc } from "./libc.ts";
