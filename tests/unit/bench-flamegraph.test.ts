import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { CpuProfile, CpuProfileNode } from "../../bench/lib/cpuprofile.ts";
import {
  buildFlameTree,
  type FlameNode,
  frameCategory,
  frameColor,
  frameLabel,
  renderFlameSvg,
} from "../../bench/lib/flamegraph.ts";

type Frame = CpuProfileNode["callFrame"];
const ROOT = "/repo";
const fn = (functionName: string, url = "file:///repo/functions/app.ts", lineNumber = 0): Frame => ({
  functionName,
  url,
  lineNumber,
});
const vm = (functionName: string): Frame => ({ functionName, url: "", lineNumber: -1 });

/**
 * A profile from stacks (outermost frame first) and each sample's duration in µs, the way V8 writes one: a node
 * per distinct path, samples pointing at the innermost frame, timeDeltas[i] the sample's duration.
 */
function profileOf(samples: { stack: Frame[]; us: number }[]): CpuProfile {
  const nodes: CpuProfileNode[] = [{ id: 1, callFrame: vm("(root)"), children: [] }];
  const byPath = new Map<string, CpuProfileNode>([["", nodes[0]!]]);
  const ids: number[] = [];
  for (const { stack } of samples) {
    let path = "";
    let parent = nodes[0]!;
    for (const f of stack) {
      path += `/${f.functionName}@${f.url}:${f.lineNumber}`;
      let node = byPath.get(path);
      if (!node) {
        node = { id: nodes.length + 1, callFrame: f, children: [] };
        nodes.push(node);
        byPath.set(path, node);
        parent.children!.push(node.id);
      }
      parent = node;
    }
    ids.push(parent.id);
  }
  return { nodes, samples: ids, timeDeltas: samples.map((s) => s.us), startTime: 0, endTime: 1e6 };
}

const child = (n: FlameNode, label: string) => n.children.find((c) => c.label === label);
const walk = (n: FlameNode, visit: (n: FlameNode, depth: number) => void, depth = 0) => {
  visit(n, depth);
  for (const c of n.children) walk(c, visit, depth + 1);
};

const main = fn("main", "file:///repo/local/main.ts", 9);
const handle = fn("handle", "file:///repo/functions/http/handler.ts", 19);
const query = fn("query", "file:///repo/node_modules/pg/lib/client.js", 99);
const parse = fn("JSON.parse", "");
const samples = [
  { stack: [main, handle, query], us: 1200 },
  { stack: [main, handle, query], us: 800 },
  { stack: [main, handle, parse], us: 1500 },
  { stack: [main, handle], us: 300 },
  { stack: [main], us: 1000 },
  { stack: [vm("(idle)")], us: 50_000 },
  { stack: [vm("(program)")], us: 700 },
  { stack: [vm("(garbage collector)")], us: 400 },
];

describe("frame labels", () => {
  it("shortens locations: repo-relative, package/file after the last node_modules, node: as is, none for native", () => {
    expect(frameLabel(handle, ROOT)).toBe("handle functions/http/handler.ts:20");
    expect(frameLabel(fn("f", "file:///x/node_modules/a/node_modules/@s/b/lib/i.js", 4), ROOT)).toBe(
      "f @s/b/lib/i.js:5",
    );
    expect(frameLabel(fn("emit", "node:events", 200), ROOT)).toBe("emit node:events:201");
    expect(frameLabel(fn("", "file:///repo/bench/run.ts", 0), ROOT)).toBe("(anonymous) bench/run.ts:1");
    expect(frameLabel(fn("x", "file:///elsewhere/my%20dir/x.ts", 2), ROOT)).toBe(
      "x /elsewhere/my dir/x.ts:3",
    );
    expect(frameLabel(parse, ROOT)).toBe("JSON.parse");
    expect(frameLabel(vm("(garbage collector)"), ROOT)).toBe("(garbage collector)");
  });

  it("sorts frames into categories", () => {
    expect(frameCategory(handle, ROOT)).toBe("repo");
    expect(frameCategory(query, ROOT)).toBe("npm");
    expect(frameCategory(fn("emit", "node:events"), ROOT)).toBe("node");
    expect(frameCategory(parse, ROOT)).toBe("native");
    expect(frameCategory(vm("(program)"), ROOT)).toBe("vm");
    expect(frameCategory(fn("x", "file:///repository-other/x.ts"), ROOT)).toBe("other"); // a prefix, not the root
  });

  it("colours deterministically within the category's hue range", () => {
    const hue = (c: string) => Number(/^hsl\((\d+),/.exec(c)![1]);
    expect(frameColor("handle functions/a.ts:3", "repo")).toBe(frameColor("handle functions/a.ts:3", "repo"));
    expect(frameColor("handle functions/a.ts:3", "repo")).toBe(
      frameColor("handle functions/a.ts:90", "repo"),
    );
    const labels = Array.from({ length: 50 }, (_, i) => `f${i} functions/x.ts`);
    for (const l of labels) expect(hue(frameColor(l, "repo"))).toBeLessThanOrEqual(32);
    for (const l of labels) expect(hue(frameColor(l, "node"))).toBeGreaterThanOrEqual(195);
    expect(new Set(labels.map((l) => frameColor(l, "repo"))).size).toBeGreaterThan(10);
  });
});

describe("buildFlameTree", () => {
  const tree = buildFlameTree(profileOf(samples), { root: ROOT });

  it("gives each frame the summed duration of the samples whose stack holds it, and self time on top", () => {
    const expected = new Map<string, { ms: number; selfMs: number }>();
    for (const { stack, us } of samples) {
      if (stack[0]!.functionName === "(idle)") continue;
      const labels = stack.map((f) => frameLabel(f, ROOT));
      labels.forEach((_, i) => {
        const key = labels.slice(0, i + 1).join(" / ");
        const e = expected.get(key) ?? { ms: 0, selfMs: 0 };
        e.ms += us / 1000;
        if (i === labels.length - 1) e.selfMs += us / 1000;
        expected.set(key, e);
      });
    }
    const got = new Map<string, { ms: number; selfMs: number }>();
    const visit = (n: FlameNode, path: string[]) => {
      for (const c of n.children) {
        const p = [...path, c.label];
        got.set(p.join(" / "), { ms: c.ms, selfMs: c.selfMs });
        visit(c, p);
      }
    };
    visit(tree, []);
    expect([...got.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [k, e] of expected) {
      expect(got.get(k)!.ms, k).toBeCloseTo(e.ms, 9);
      expect(got.get(k)!.selfMs, k).toBeCloseTo(e.selfMs, 9);
    }
    expect(tree.ms).toBeCloseTo((1200 + 800 + 1500 + 300 + 1000 + 700 + 400) / 1000, 9);
  });

  it("never has children adding up to more than their parent; the difference is the parent's self time", () => {
    walk(tree, (n) => {
      const kids = n.children.reduce((s, c) => s + c.ms, 0);
      expect(kids).toBeLessThanOrEqual(n.ms + 1e-9);
      expect(n.ms - kids).toBeCloseTo(n.selfMs, 9);
    });
  });

  it("merges frames that print the same under one parent, with their callees", () => {
    // The same pg function loaded from two checkouts: two V8 nodes, one label after the url cleanup
    const a = fn("query", "file:///repo/node_modules/pg/lib/client.js", 99);
    const b = fn("query", "file:///old/node_modules/pg/lib/client.js", 99);
    const t = buildFlameTree(
      profileOf([
        { stack: [main, a, parse], us: 1000 },
        { stack: [main, b, parse], us: 2000 },
        { stack: [main, b], us: 500 },
      ]),
      { root: ROOT },
    );
    const m = child(t, frameLabel(main, ROOT))!;
    expect(m.children.map((c) => c.label)).toEqual(["query pg/lib/client.js:100"]);
    expect(m.children[0]!.ms).toBeCloseTo(3.5, 9);
    expect(m.children[0]!.children).toHaveLength(1);
    expect(m.children[0]!.children[0]!.ms).toBeCloseTo(3, 9);
  });

  it("leaves (idle) out unless asked, and keeps (program) and (garbage collector) at the root", () => {
    expect(child(tree, "(idle)")).toBeUndefined();
    expect(child(tree, "(program)")!.ms).toBeCloseTo(0.7, 9);
    expect(child(tree, "(garbage collector)")!.ms).toBeCloseTo(0.4, 9);
    const withIdle = buildFlameTree(profileOf(samples), { root: ROOT, keepIdle: true });
    expect(child(withIdle, "(idle)")!.ms).toBeCloseTo(50, 9);
    expect(withIdle.ms).toBeCloseTo(tree.ms + 50, 9);
  });

  it("with a focus, keeps only the stacks through the frame, rooted there, its occurrences merged, recursion once", () => {
    const worker = fn("worker", "file:///repo/bench/workers/w.ts", 4);
    const t = buildFlameTree(
      profileOf([
        ...samples,
        { stack: [worker, handle, query], us: 2500 }, // handle reached another way: merged with main's
        { stack: [worker, handle, main, handle, parse], us: 600 }, // recursion: counted under the outer handle
        { stack: [worker], us: 9000 }, // not through handle
      ]),
      { root: ROOT, focus: "handle" },
    );
    const h = frameLabel(handle, ROOT);
    expect(t.children.map((c) => c.label)).toEqual([h]);
    expect(t.ms).toBeCloseTo((1200 + 800 + 1500 + 300 + 2500 + 600) / 1000, 9);
    const focused = t.children[0]!;
    expect(child(focused, frameLabel(query, ROOT))!.ms).toBeCloseTo(4.5, 9);
    expect(child(focused, "JSON.parse")!.ms).toBeCloseTo(1.5, 9);
    expect(child(focused, frameLabel(main, ROOT))!.ms).toBeCloseTo(0.6, 9);
    walk(t, (n) => expect([frameLabel(worker, ROOT), "(program)"]).not.toContain(n.label));
    expect(buildFlameTree(profileOf(samples), { root: ROOT, focus: "absent" }).ms).toBe(0);
  });
});

/** Each frame's box: the label (first line of its title) and its geometry, in drawing order. */
function frames(svg: string) {
  const re =
    /<g class="frame"><title>([^\n<]*)\n[^<]*<\/title><rect x="([\d.]+)" y="(\d+)" width="([\d.]+)"[^>]*\/>/g;
  return [...svg.matchAll(re)].map((m) => ({
    label: m[1]!,
    x: Number(m[2]),
    y: Number(m[3]),
    w: Number(m[4]),
  }));
}
const preorder = (t: FlameNode) => {
  const out: FlameNode[] = [];
  walk(t, (n) => out.push(n));
  return out;
};

describe("renderFlameSvg", () => {
  const tree = buildFlameTree(profileOf(samples), { root: ROOT });

  it("draws one box per frame, as wide as its share of the root's time, callees above callers", () => {
    const svg = renderFlameSvg(tree, { title: "t.cpuprofile", width: 1000 });
    const boxes = frames(svg);
    const nodes = preorder(tree);
    expect(boxes).toHaveLength(nodes.length);
    expect((svg.match(/<rect /g) ?? []).length).toBe(nodes.length + 1); // + the background
    expect(boxes[0]!.w).toBeCloseTo(1000 - 20, 2);
    boxes.forEach((b, i) => {
      expect(b.label).toBe(nodes[i]!.label);
      expect(b.w).toBeCloseTo((nodes[i]!.ms / tree.ms) * boxes[0]!.w, 1);
    });
    const byLabel = new Map(boxes.map((b) => [b.label, b]));
    const m = byLabel.get(frameLabel(main, ROOT))!;
    const h = byLabel.get(frameLabel(handle, ROOT))!;
    expect(h.y).toBeLessThan(m.y); // root at the bottom
    expect(h.x).toBeGreaterThanOrEqual(m.x);
    expect(h.x + h.w).toBeLessThanOrEqual(m.x + m.w + 0.01);
    expect(svg).toContain("t.cpuprofile: 5.9 ms of samples");
  });

  it("escapes XML in labels, the title and the focus", () => {
    const evil = fn('<lambda> & "x"', "file:///repo/functions/a&b.ts", 0);
    const t = buildFlameTree(profileOf([{ stack: [main, evil], us: 1000 }]), { root: ROOT });
    const svg = renderFlameSvg(t, { title: "a<b>&c.cpuprofile", focus: "<f>", width: 2000 });
    expect(svg).toContain("&lt;lambda&gt; &amp; &quot;x&quot; functions/a&amp;b.ts:1");
    expect(svg).toContain("a&lt;b&gt;&amp;c.cpuprofile");
    expect(svg).toContain("focus: &lt;f&gt;");
    expect(svg).not.toContain("<lambda");
    expect(svg).not.toContain('"x"');
    expect(svg.match(/&(?!(amp|lt|gt|quot|apos);)/g)).toBeNull();
  });

  it("leaves out frames narrower than minWidthPx, with their callees", () => {
    const tiny = fn("tiny", "file:///repo/functions/t.ts", 0);
    const t = buildFlameTree(
      profileOf([
        { stack: [main, handle], us: 1_000_000 },
        { stack: [main, tiny, parse], us: 100 }, // 1e-4 of 1,180 px: ≈ 0.12 px
      ]),
      { root: ROOT },
    );
    const labels = (svg: string) => frames(svg).map((b) => b.label);
    const all = labels(renderFlameSvg(t, { minWidthPx: 0 }));
    expect(all).toContain(frameLabel(tiny, ROOT));
    expect(all).toContain("JSON.parse");
    const kept = labels(renderFlameSvg(t)); // default 0.3 px
    expect(kept).toEqual(all.filter((l) => l !== frameLabel(tiny, ROOT) && l !== "JSON.parse"));
  });
});

describe("on a real profile", () => {
  it("finds a named busy function from node --cpu-prof with the time it spun", () => {
    const dir = mkdtempSync(join(tmpdir(), "flame-"));
    try {
      const script =
        "function flameBusyLoop(ms){const end=Date.now()+ms;let x=0;while(Date.now()<end)x+=Math.sqrt(x+1);return x}" +
        "for(let i=0;i<3;i++)flameBusyLoop(80)";
      execFileSync(process.execPath, ["--cpu-prof", `--cpu-prof-dir=${dir}`, "-e", script]);
      const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"))!;
      const profile = JSON.parse(readFileSync(join(dir, file), "utf8")) as CpuProfile;
      const tree = buildFlameTree(profile);
      let busy = 0;
      walk(tree, (n) => {
        if (n.label.startsWith("flameBusyLoop ")) busy += n.ms;
      });
      expect(busy).toBeGreaterThan(0);
      expect(busy).toBeLessThanOrEqual(tree.ms);
      const focused = buildFlameTree(profile, { focus: "flameBusyLoop" });
      expect(focused.ms).toBeCloseTo(busy, 6);
      expect(frames(renderFlameSvg(focused)).length).toBeGreaterThan(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
