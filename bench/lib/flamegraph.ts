/**
 * Flame graphs of V8 CPU profiles, as self-contained SVG: the call tree with each frame as wide as the time sampled
 * in it and its callees, root at the bottom. Pure functions; bench/tools/flamegraph.ts reads and writes the files.
 */
import { type CpuProfile, type CpuProfileNode, sampleDurationUs } from "./cpuprofile.ts";

/** Where a frame's code lives; picks its colour. `vm` is V8's own pseudo-frames: (program), (garbage collector). */
export type FrameCategory = "repo" | "npm" | "node" | "native" | "vm" | "other";

export interface FlameNode {
  label: string;
  category: FrameCategory;
  /** Time sampled in this frame and its callees, ms. */
  ms: number;
  /** Time sampled with this frame on top of the stack, ms. */
  selfMs: number;
  /** Sorted by label, so the same code lays out the same way in every graph. */
  children: FlameNode[];
}

export interface FlameTreeOptions {
  /** Keep (idle) samples: time the thread waited for I/O or timers. Off by default, it would dwarf the rest. */
  keepIdle?: boolean;
  /** Keep only stacks through a frame with this function name, rooted at it. */
  focus?: string;
  /** The repository root, stripped from file URLs (default: process.cwd()). */
  root?: string;
}

/** A frame's short location: a repo-relative path, `package/file.js`, `node:...`; "" for native code. */
export function frameLocation(url: string, root: string = process.cwd()): string {
  if (!url) return "";
  const nm = url.lastIndexOf("/node_modules/");
  if (nm >= 0) return url.slice(nm + "/node_modules/".length);
  if (!url.startsWith("file://")) return url; // node:..., [eval], wasm://...
  return inRepo(url, root) ?? filePath(url);
}

/** A file URL's path as the file system has it (URLs escape spaces and the like). */
function filePath(url: string): string {
  const path = url.slice("file://".length);
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/** The path relative to the repository root, or undefined for a file outside it. */
function inRepo(url: string, root: string): string | undefined {
  if (!url.startsWith("file://")) return undefined;
  const path = filePath(url);
  const prefix = root.endsWith("/") ? root : `${root}/`;
  return path.startsWith(prefix) ? path.slice(prefix.length) : undefined;
}

export function frameLabel(frame: CpuProfileNode["callFrame"], root?: string): string {
  const name = frame.functionName || "(anonymous)";
  const location = frameLocation(frame.url, root);
  if (!location) return name;
  return frame.lineNumber >= 0 ? `${name} ${location}:${frame.lineNumber + 1}` : `${name} ${location}`;
}

export function frameCategory(
  frame: CpuProfileNode["callFrame"],
  root: string = process.cwd(),
): FrameCategory {
  const { url, functionName } = frame;
  if (!url) return functionName.startsWith("(") ? "vm" : "native";
  if (url.includes("/node_modules/")) return "npm";
  if (url.startsWith("node:")) return "node";
  if (url.startsWith("wasm://")) return "native";
  if (inRepo(url, root) !== undefined) return "repo";
  return "other"; // files outside the repository, `node -e` code
}

const isIdle = (n: CpuProfileNode) => !n.callFrame.url && n.callFrame.functionName === "(idle)";

/** Built with children keyed by label, which is what merges two V8 nodes that print the same. */
interface Building {
  label: string;
  category: FrameCategory;
  selfUs: number;
  children: Map<string, Building>;
}

const newBuilding = (label: string, category: FrameCategory): Building => ({
  label,
  category,
  selfUs: 0,
  children: new Map(),
});

function childOf(parent: Building, n: CpuProfileNode, root: string): Building {
  const label = frameLabel(n.callFrame, root);
  let child = parent.children.get(label);
  if (!child) {
    child = newBuilding(label, frameCategory(n.callFrame, root));
    parent.children.set(label, child);
  }
  return child;
}

export function buildFlameTree(profile: CpuProfile, opts: FlameTreeOptions = {}): FlameNode {
  const root = opts.root ?? process.cwd();
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    // V8 now and then records a sample out of order; a negative interval would draw a box of negative width
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, sampleDurationUs(profile, i)));
  });
  // V8's root is the one node no other node lists as a child (nodes[0] in practice)
  const childIds = new Set(profile.nodes.flatMap((n) => n.children ?? []));
  const v8Root = profile.nodes.find((n) => !childIds.has(n.id));
  const top = newBuilding(opts.focus ? `focus: ${opts.focus}` : "all", "vm");
  if (!v8Root) return finish(top);

  // Depth-first over V8's tree, carrying the merged node each V8 node lands in. With a focus, nothing lands
  // anywhere until the walk enters a focus frame, which lands under the top; a focus frame inside one (recursion)
  // is an ordinary frame there, so its samples count once.
  const stack: { node: CpuProfileNode | undefined; into: Building | undefined }[] = (
    v8Root.children ?? []
  ).map((id) => ({ node: byId.get(id), into: opts.focus ? undefined : top }));
  top.selfUs += opts.focus ? 0 : (selfUs.get(v8Root.id) ?? 0);
  while (stack.length > 0) {
    const { node, into } = stack.pop()!;
    if (!node || (!opts.keepIdle && isIdle(node))) continue;
    const parent = into ?? (node.callFrame.functionName === opts.focus ? top : undefined);
    const here = parent && childOf(parent, node, root);
    if (here) here.selfUs += selfUs.get(node.id) ?? 0;
    for (const id of node.children ?? []) stack.push({ node: byId.get(id), into: here });
  }
  return finish(top);
}

/** Totals bottom-up, in µs (V8's integers) until the end so sums of siblings stay exact. */
function finish(b: Building): FlameNode {
  const toNode = (x: Building): { node: FlameNode; us: number } => {
    const kids = [...x.children.values()]
      .sort((a, c) => (a.label < c.label ? -1 : a.label > c.label ? 1 : 0))
      .map(toNode)
      .filter((k) => k.us > 0);
    const us = x.selfUs + kids.reduce((s, k) => s + k.us, 0);
    return {
      us,
      node: {
        label: x.label,
        category: x.category,
        ms: us / 1000,
        selfMs: x.selfUs / 1000,
        children: kids.map((k) => k.node),
      },
    };
  };
  return toNode(b).node;
}

export interface FlameSvgOptions {
  /** The first line at the top, e.g. the profile's file name. */
  title?: string;
  /** Shown in the title line when the tree was built with one. */
  focus?: string;
  width?: number;
  rowHeight?: number;
  /** Frames narrower than this are not drawn (nor their callees, narrower still). */
  minWidthPx?: number;
}

export const escapeXml = (s: string) =>
  s
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");

/** Hue range and saturation per category: warm for our code so it stands out, blue for node, grey for the VM. */
const PALETTE: Record<FrameCategory, { hue: [number, number]; sat: number; light: [number, number] }> = {
  repo: { hue: [0, 32], sat: 80, light: [55, 68] },
  npm: { hue: [45, 62], sat: 75, light: [52, 64] },
  node: { hue: [195, 225], sat: 60, light: [62, 74] },
  native: { hue: [265, 295], sat: 45, light: [66, 78] },
  other: { hue: [160, 180], sat: 45, light: [58, 70] },
  vm: { hue: [0, 0], sat: 0, light: [70, 82] },
};

/** FNV-1a: a stable hash, so a function keeps its colour from one graph to the next. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export function frameColor(label: string, category: FrameCategory): string {
  const p = PALETTE[category];
  // Without the line number: a function keeps its colour when an edit above it moves it
  const h = hash(label.replace(/:\d+$/, ""));
  const hue = p.hue[0] + ((h & 0xffff) / 0xffff) * (p.hue[1] - p.hue[0]);
  const light = p.light[0] + ((h >>> 16) / 0xffff) * (p.light[1] - p.light[0]);
  return `hsl(${hue.toFixed(0)},${p.sat}%,${light.toFixed(0)}%)`;
}

const FONT_PX = 11;
const CHAR_PX = FONT_PX * 0.6; // a monospace glyph's advance, near enough to decide what fits

/** The label cut to what fits in `px`, or "" when not even a few characters would. */
function fitText(label: string, px: number): string {
  const chars = Math.floor((px - 6) / CHAR_PX);
  if (chars < 3) return "";
  return label.length <= chars ? label : `${label.slice(0, chars - 1)}…`;
}

const fmtMs = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms >= 1 ? ms.toFixed(1) : ms.toFixed(3));

export function renderFlameSvg(tree: FlameNode, opts: FlameSvgOptions = {}): string {
  const width = opts.width ?? 1200;
  const rowH = opts.rowHeight ?? 16;
  const minW = opts.minWidthPx ?? 0.3;
  const pad = 10;
  const top = 44; // room for the two title lines
  const plotW = width - 2 * pad;
  const total = tree.ms;
  const scale = total > 0 ? plotW / total : 0;

  // Lay out first (which frames are wide enough, how deep it goes), then draw from the known height
  const boxes: { n: FlameNode; x: number; w: number; depth: number }[] = [];
  const place = (n: FlameNode, x: number, depth: number) => {
    const w = n.ms * scale;
    if (w < minW) return;
    boxes.push({ n, x, w, depth });
    let cx = x;
    for (const c of n.children) {
      place(c, cx, depth + 1);
      cx += c.ms * scale;
    }
  };
  place(tree, pad, 0);
  const depth = boxes.reduce((d, b) => Math.max(d, b.depth + 1), 0);
  const height = top + depth * rowH + pad;

  const heading = `${opts.title ?? "CPU profile"}: ${fmtMs(total)} ms of samples${opts.focus ? `, focus: ${opts.focus}` : ""}`;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Menlo, Consolas, monospace" font-size="${FONT_PX}">`,
    "<style>g.frame:hover rect{stroke:#000;stroke-width:0.8}</style>",
    `<rect class="bg" width="${width}" height="${height}" fill="#fcfcfa"/>`,
    `<text x="${pad}" y="20" font-size="14" font-weight="bold">${escapeXml(heading)}</text>`,
    `<text x="${pad}" y="36" fill="#555">${escapeXml("x: share of the sampled time · hover a frame for its ms · colour: red our code, yellow npm, blue node:, purple native, teal other files, grey VM")}</text>`,
  ];
  for (const { n, x, w, depth: d } of boxes) {
    const y = height - pad - (d + 1) * rowH;
    const pct = total > 0 ? (n.ms / total) * 100 : 0;
    const text = fitText(n.label, w);
    parts.push(
      `<g class="frame"><title>${escapeXml(`${n.label}\n${fmtMs(n.ms)} ms, ${pct.toFixed(2)} % (self ${fmtMs(n.selfMs)} ms)`)}</title>` +
        `<rect x="${x.toFixed(2)}" y="${y}" width="${w.toFixed(2)}" height="${rowH - 1}" rx="1" fill="${frameColor(n.label, n.category)}"/>` +
        (text ? `<text x="${(x + 3).toFixed(2)}" y="${y + rowH - 4}">${escapeXml(text)}</text>` : "") +
        "</g>",
    );
  }
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}
