// Cold-start probe: a fresh Node process loads one function bundle as the Lambda runtime does at init, and
// reports, in ms since the process started (performance.timeOrigin): when this script began (Node's own
// bootstrap) and when the handler was ready (load done, module-level init run). Plain .mjs on purpose:
// a .ts probe would add Node's type-stripping start-up to every figure.
// Like the Node.js runtime interface client (UserFunction _tryRequire): a `.js` file is require()d unless the
// nearest package.json says "type": "module", `.mjs` is import()ed. The difference matters: a CommonJS
// bundle loaded through import() pays the ESM loader on each of its require()s (≈ 35 ms more here).
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";

function typeModule(dir) {
  const pj = join(dir, "package.json");
  if (existsSync(pj)) return JSON.parse(readFileSync(pj, "utf8")).type === "module";
  const parent = dirname(dir);
  return parent === dir ? false : typeModule(parent);
}

// Optional second argument: a JSON file of API Gateway events ({ events: [...] }). After the clock stops, the
// handler is invoked with each in turn, as a warm sandbox would be, and each invocation's ms is reported.
function lambdaContext(name, n) {
  const deadline = Date.now() + 10_000;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: name,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:${name}`,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE ?? "512",
    awsRequestId: `cold-probe-${n}`,
    logGroupName: `/aws/lambda/${name}`,
    logStreamName: "cold-probe",
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
}

async function invokeEach(handler, specFile) {
  const { name, events } = JSON.parse(readFileSync(specFile, "utf8"));
  const invocationsMs = [];
  const statuses = [];
  for (const [n, event] of events.entries()) {
    const t = performance.now();
    const result = await handler(event, lambdaContext(name, n));
    invocationsMs.push(performance.now() - t);
    statuses.push(result?.statusCode ?? null);
  }
  return { invocationsMs, statuses };
}

const started = performance.now();
const file = process.argv[2];
const invocations = process.argv[3];
try {
  const esm = file.endsWith(".mjs") || (file.endsWith(".js") && typeModule(dirname(file)));
  const mod = esm ? await import(pathToFileURL(file).href) : createRequire(file)(file);
  const handler = mod.handler ?? mod.default?.handler;
  if (typeof handler !== "function") throw new Error(`${file} exports no handler function`);
  // Init work the module started but did not finish synchronously (a lazy import begun at init) runs before
  // the runtime asks for the first event: let it run, as the runtime's own awaits do, before stopping the clock.
  await new Promise((resolve) => setImmediate(resolve));
  const ready = performance.now();
  const invoked = invocations ? await invokeEach(handler, invocations) : {};
  process.stdout.write(
    `${JSON.stringify({ ok: true, bootstrapMs: started, readyMs: ready, importMs: ready - started, loadedBy: esm ? "import" : "require", ...invoked })}\n`,
  );
  // The handler's connections (Postgres pool, Redis) would keep the process alive, as they keep a sandbox warm.
  if (invocations) process.exit(0);
} catch (err) {
  process.stdout.write(`${JSON.stringify({ ok: false, error: String(err?.stack ?? err) })}\n`);
  process.exitCode = 1;
}
