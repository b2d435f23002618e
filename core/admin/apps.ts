// The three Hono apps behind ports 15000 (admin), 15021 (readiness) and 15020 (metrics), with
// istio/ztunnel's paths and answers (reference/ztunnel.md §7.3, `src/admin.rs`, `src/readiness/server.rs`).
import { Hono, type Context } from "hono";
import { LOG_LEVELS, isLogLevel, type Logger } from "../telemetry/index.ts";
import { scrubKeyMaterial } from "./scrub.ts";

export interface LoggingControl {
  get(): string;
  set(level: string): void;
}

export interface AdminAppDeps {
  configDump: () => unknown | Promise<unknown>;
  /** Begins a graceful shutdown. Runs after the response is on its way, so it may stop the admin server. */
  quit: () => void;
  logging?: LoggingControl;
  /** Where failures of the admin handlers themselves are reported. */
  logger?: Logger;
}

const TEXT = { "content-type": "text/plain; charset=utf-8" };

function methodNotAllowed(c: Context, allow: string, body = ""): Response {
  return c.body(body, 405, { ...TEXT, allow });
}

function notFound(c: Context): Response {
  return c.body("not found\n", 404, TEXT);
}

const LOGGING_HELP =
  "usage: POST /logging                (to show the current level)\n" +
  "usage: POST /logging?level=<level>  (to change it)\n" +
  `hint: level: ${LOG_LEVELS.join("|")}\n`;

function dashboard(endpoints: readonly (readonly [string, string])[]): string {
  const rows = endpoints.map(([path, what]) => `<tr><td><a href="${path}">${path}</a></td><td>${what}</td></tr>`).join("\n");
  return (
    `<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>mesh admin</title></head><body>\n` +
    `<h1>mesh admin</h1>\n<table>\n<tr><th>endpoint</th><th>description</th></tr>\n${rows}\n</table>\n</body></html>\n`
  );
}

export function createAdminApp(deps: AdminAppDeps): Hono {
  const app = new Hono();
  const endpoints: [string, string][] = [
    ["config_dump", "dump the current mesh configuration (GET)"],
    ["quitquitquit", "shut down the server (POST)"],
  ];
  if (deps.logging) endpoints.push(["logging", "query/change the logging level (POST)"]);
  const page = dashboard(endpoints);

  app.get("/", (c) => c.html(page));
  app.all("/", (c) => methodNotAllowed(c, "GET, HEAD"));

  app.get("/config_dump", async (c) => {
    let body: string;
    try {
      body = JSON.stringify(scrubKeyMaterial(await deps.configDump()), null, 2) ?? "null";
    } catch (e) {
      deps.logger?.error("config dump failed", { error: e });
      return c.body(`config dump failed: ${e instanceof Error ? e.message : String(e)}\n`, 500, TEXT);
    }
    return c.body(body + "\n", 200, { "content-type": "application/json; charset=utf-8" });
  });
  app.all("/config_dump", (c) => methodNotAllowed(c, "GET, HEAD"));

  app.post("/quitquitquit", (c) => {
    // Deferred so the caller may stop this very server without cutting off the answer.
    setTimeout(() => {
      try {
        deps.quit();
      } catch (e) {
        deps.logger?.error("shutdown requested over admin failed", { error: e });
      }
    }, 0);
    return c.body("OK\n", 200, TEXT);
  });
  app.all("/quitquitquit", (c) => methodNotAllowed(c, "POST"));

  const logging = deps.logging;
  if (logging) {
    app.post("/logging", (c) => {
      const level = c.req.query("level");
      if (level !== undefined) {
        if (!isLogLevel(level)) {
          return c.body(`invalid level "${level}"; allowed levels: ${LOG_LEVELS.join(", ")}\n${LOGGING_HELP}`, 400, TEXT);
        }
        try {
          logging.set(level);
        } catch (e) {
          return c.body(`failed to set level: ${e instanceof Error ? e.message : String(e)}\n${LOGGING_HELP}`, 400, TEXT);
        }
      }
      return c.body(`current log level is ${logging.get()}\n`, 200, TEXT);
    });
    app.all("/logging", (c) => methodNotAllowed(c, "POST", `invalid HTTP method\n${LOGGING_HELP}`));
  }

  app.notFound(notFound);
  return app;
}

export interface ReadinessAppDeps {
  readiness: () => { ready: boolean; pending: string[] };
}

export function createReadinessApp(deps: ReadinessAppDeps): Hono {
  const app = new Hono();
  app.get("/healthz/ready", (c) => {
    const { ready, pending } = deps.readiness();
    if (ready && pending.length === 0) return c.body("ready\n", 200, TEXT);
    // istio/ztunnel answers 500 (src/readiness/server.rs), with the pending tasks sorted.
    return c.body(`not ready, pending: ${[...pending].sort().join(", ")}\n`, 500, TEXT);
  });
  app.all("/healthz/ready", (c) => methodNotAllowed(c, "GET, HEAD"));
  app.notFound(notFound);
  return app;
}

export interface MetricsAppDeps {
  metrics: { render(accept?: string): Promise<{ body: string; contentType: string }> };
  logger?: Logger;
}

export function createMetricsApp(deps: MetricsAppDeps): Hono {
  const app = new Hono();
  const scrape = async (c: Context): Promise<Response> => {
    try {
      const { body, contentType } = await deps.metrics.render(c.req.header("accept"));
      return c.body(body, 200, { "content-type": contentType });
    } catch (e) {
      deps.logger?.error("metrics render failed", { error: e });
      return c.body("metrics unavailable\n", 500, TEXT);
    }
  };
  for (const path of ["/metrics", "/stats/prometheus"]) {
    app.get(path, scrape);
    app.all(path, (c) => methodNotAllowed(c, "GET, HEAD"));
  }
  app.notFound(notFound);
  return app;
}
