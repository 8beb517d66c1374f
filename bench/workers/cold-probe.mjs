// Cold-start probe: a fresh Node process loads one function bundle (as the Lambda runtime does at init)
// and reports, in ms since the process started (performance.timeOrigin): when this script began (Node's own
// bootstrap) and when the handler was ready (import done, module-level init run). Plain .mjs on purpose:
// a .ts probe would add Node's type-stripping start-up to every figure.
import { pathToFileURL } from "node:url";

const started = performance.now();
const file = process.argv[2];
try {
  const mod = await import(pathToFileURL(file).href);
  const handler = mod.handler ?? mod.default?.handler;
  if (typeof handler !== "function") throw new Error(`${file} exports no handler function`);
  const ready = performance.now();
  process.stdout.write(
    `${JSON.stringify({ ok: true, bootstrapMs: started, readyMs: ready, importMs: ready - started })}\n`,
  );
} catch (err) {
  process.stdout.write(`${JSON.stringify({ ok: false, error: String(err?.stack ?? err) })}\n`);
  process.exitCode = 1;
}
