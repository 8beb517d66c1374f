// Preload for the cold-start breakdown (layer mode, CJS): times each package the function bundle require()s
// at init (inclusive of that package's own dependencies) and writes them as one JSON line to stderr.
// "What the bundle requires" is decided by the requiring module (the bundle file, argv[2] of the probe), not
// by nesting depth: a bundle may require during init after its top-level code has returned (a dynamic import
// esbuild inlined runs in a microtask), where a depth count would name the package's own internal files.
const Module = require("node:module");
const { resolve } = require("node:path");

const bundle = process.argv[2] ? resolve(process.argv[2]) : undefined;
const load = Module._load;
const times = [];
Module._load = function (request, parent, ...rest) {
  // The probe's own require of the bundle (made with createRequire(bundle)) is not one of the bundle's requires.
  if (!bundle || parent?.filename !== bundle || resolve(request) === bundle)
    return load.call(this, request, parent, ...rest);
  const started = performance.now();
  try {
    return load.call(this, request, parent, ...rest);
  } finally {
    times.push([request, performance.now() - started]);
  }
};
process.on("exit", () => {
  const merged = {};
  for (const [request, ms] of times) merged[request] = (merged[request] ?? 0) + ms;
  process.stderr.write(`${JSON.stringify({ requireMs: merged })}\n`);
});
