// Preload for the cold-start breakdown (layer mode, CJS): times each package the function bundle require()s
// at init (inclusive of that package's own dependencies) and writes them as one JSON line to stderr.
const Module = require("node:module");

const load = Module._load;
const times = [];
let depth = 0;
Module._load = function (request, ...rest) {
  const started = performance.now();
  depth++;
  try {
    return load.call(this, request, ...rest);
  } finally {
    depth--;
    // depth 0 is the bundle itself; depth 1 what the bundle requires
    if (depth === 1) times.push([request, performance.now() - started]);
  }
};
process.on("exit", () => {
  const merged = {};
  for (const [request, ms] of times) merged[request] = (merged[request] ?? 0) + ms;
  process.stderr.write(`${JSON.stringify({ requireMs: merged })}\n`);
});
