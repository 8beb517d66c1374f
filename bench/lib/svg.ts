/** A small dependency-free SVG line chart: latency (log scale) against concurrency (log scale). */
export interface Series {
  label: string;
  color: string;
  dashed?: boolean;
  points: { x: number; y: number }[];
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export function latencyChart(title: string, subtitle: string, series: Series[]): string {
  const W = 760;
  const H = 440;
  const m = { left: 70, right: 210, top: 56, bottom: 56 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const all = series.flatMap((s) => s.points).filter((p) => p.y > 0 && Number.isFinite(p.y));
  const xs = [...new Set(all.map((p) => p.x))].sort((a, b) => a - b);
  const yMin = 10 ** Math.floor(Math.log10(Math.min(...all.map((p) => p.y))));
  const yMax = 10 ** Math.ceil(Math.log10(Math.max(...all.map((p) => p.y))));
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs);
  const lx = (x: number) =>
    m.left +
    (xMax === xMin ? pw / 2 : ((Math.log(x) - Math.log(xMin)) / (Math.log(xMax) - Math.log(xMin))) * pw);
  const ly = (y: number) =>
    m.top + ph - ((Math.log10(y) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * ph;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${m.left}" y="24" font-size="16" font-weight="bold">${esc(title)}</text>`,
    `<text x="${m.left}" y="42" fill="#555">${esc(subtitle)}</text>`,
  );
  // y grid: 1-2-5 steps per decade
  for (let d = yMin; d < yMax * 1.0001; d *= 10) {
    for (const f of [1, 2, 5]) {
      const v = d * f;
      if (v < yMin * 0.9999 || v > yMax * 1.0001) continue;
      const y = ly(v);
      parts.push(
        `<line x1="${m.left}" x2="${m.left + pw}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="${f === 1 ? "#ccc" : "#eee"}"/>`,
        `<text x="${m.left - 8}" y="${(y + 4).toFixed(1)}" text-anchor="end" fill="#444">${v >= 1 ? v : v.toPrecision(1)}</text>`,
      );
    }
  }
  for (const x of xs) {
    const px = lx(x);
    parts.push(
      `<line x1="${px.toFixed(1)}" x2="${px.toFixed(1)}" y1="${m.top}" y2="${m.top + ph}" stroke="#eee"/>`,
      `<text x="${px.toFixed(1)}" y="${m.top + ph + 18}" text-anchor="middle" fill="#444">${x}</text>`,
    );
  }
  parts.push(
    `<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`,
    `<text x="${m.left + pw / 2}" y="${H - 14}" text-anchor="middle">concurrency (connections, log scale)</text>`,
    `<text transform="translate(18 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">latency, ms (log scale)</text>`,
  );
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => p.y > 0 && Number.isFinite(p.y)).sort((a, b) => a.x - b.x);
    const d = pts.map((p, j) => `${j ? "L" : "M"}${lx(p.x).toFixed(1)},${ly(p.y).toFixed(1)}`).join(" ");
    parts.push(
      `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ""}/>`,
    );
    for (const p of pts) {
      parts.push(
        `<circle cx="${lx(p.x).toFixed(1)}" cy="${ly(p.y).toFixed(1)}" r="3.5" fill="${s.color}"><title>${esc(s.label)} c=${p.x}: ${p.y} ms</title></circle>`,
      );
    }
    const ly0 = m.top + 10 + i * 22;
    const lx0 = m.left + pw + 16;
    parts.push(
      `<line x1="${lx0}" x2="${lx0 + 26}" y1="${ly0}" y2="${ly0}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ""}/>`,
      `<text x="${lx0 + 32}" y="${ly0 + 4}">${esc(s.label)}</text>`,
    );
  });
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}
