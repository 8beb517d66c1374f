/**
 * Edits to a prebundled layer package's code (infra/layer-packages.ts), each found by its exact text in esbuild's
 * unminified bundle and applied before minifying. Only for measured costs the package cannot avoid itself; each
 * says when to remove it. A package upgrade that moves the text fails the layer's build instead of shipping the
 * package unpatched.
 */
export interface PrebundlePatch {
  /** The text the edit goes in front of; it must occur exactly once in the bundle. */
  before: string;
  /** Inserted as it is, right before `before`. */
  insert: string;
}

export const PREBUNDLE_PATCHES: Readonly<Record<string, readonly PrebundlePatch[]>> = {
  // ioredis 5–6 adds its ~600 command methods (each command and its Buffer form) to a class prototype one by one.
  // V8 keeps a class prototype's properties in fast mode, where each addition copies the descriptor array, so the
  // loop is quadratic: 25–35 ms and as much again in garbage collection at every cold start of a function that
  // loads ioredis (docs/performance.md, Cold start). Adding and deleting one property first turns the prototype
  // into dictionary mode, where additions are O(1); V8 makes it fast again, once, when it is first used as a
  // prototype. Own properties, their order and values are unchanged. Remove when ioredis builds the table this way.
  ioredis: [
    {
      before: "commands.forEach(function(commandName) {\n",
      insert: "Commander.prototype.__dictionaryMode = 0; delete Commander.prototype.__dictionaryMode; ",
    },
  ],
};

/** `code` with `patches` applied; throws when a patch's text is not found exactly once. */
export function applyPrebundlePatches(
  name: string,
  code: string,
  patches = PREBUNDLE_PATCHES[name] ?? [],
): string {
  let out = code;
  for (const patch of patches) {
    const at = out.indexOf(patch.before);
    if (at < 0 || out.indexOf(patch.before, at + 1) >= 0)
      throw new Error(
        `prebundle patch for ${name}: ${at < 0 ? "text not found" : "text found more than once"} (${JSON.stringify(patch.before)}); the package changed, so review infra/prebundle-patches.ts`,
      );
    out = `${out.slice(0, at)}${patch.insert}${out.slice(at)}`;
  }
  return out;
}
