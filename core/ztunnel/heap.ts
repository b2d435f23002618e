// Heap hygiene. After a burst of new connections the JS heap holds garbage that JavaScriptCore
// collects only when more allocation pushes it to; on a proxy that then sits idle holding those
// connections, that garbage stays in RSS. When RSS has grown well past its size after the last
// check, ask for a collection (non-blocking) so an idle ztunnel gives memory back.
const CHECK_INTERVAL_MS = 1000;
const GROWTH_BYTES = 24 * 1024 * 1024;

export function startHeapHygiene(): () => void {
  let baseline = process.memoryUsage.rss();
  const timer = setInterval(() => {
    const rss = process.memoryUsage.rss();
    if (rss - baseline < GROWTH_BYTES) {
      if (rss < baseline) baseline = rss;
      return;
    }
    Bun.gc(false);
    baseline = rss;
  }, CHECK_INTERVAL_MS);
  timer.unref?.();
  return () => clearInterval(timer);
}
