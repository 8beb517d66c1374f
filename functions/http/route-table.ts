import type { FunctionSpec, HttpRoute } from "../manifest.ts";

/** A function that has an HTTP route, as API Gateway knows it. */
export type RoutedFunction = FunctionSpec & { route: HttpRoute };

export type RouteMatch =
  | { kind: "match"; fn: RoutedFunction; routeKey: string; pathParameters: Record<string, string> }
  | { kind: "method_not_allowed"; allow: string[] }
  | { kind: "not_found" };

interface CompiledRoute {
  fn: RoutedFunction;
  pattern: RegExp;
  names: string[];
}

export interface RouteTable {
  match(method: string, path: string): RouteMatch;
}

// A `{name}` in an API Gateway path template matches one non-empty segment.
function compile(fn: RoutedFunction): CompiledRoute {
  const names: string[] = [];
  const source = fn.route.path
    .split("/")
    .map((segment) => {
      const param = /^\{([^}]+)\}$/.exec(segment);
      if (!param?.[1]) return segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      names.push(param[1]);
      return "([^/]+)";
    })
    .join("/");
  return { fn, names, pattern: new RegExp(`^${source}$`) };
}

function decodeSegment(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** Exact path-template matching over the functions that have a route (others are ignored). */
export function buildRouteTable(functions: readonly FunctionSpec[]): RouteTable {
  // Like API Gateway, a literal segment wins over a `{param}`: fewer parameters are tried first.
  const routes = functions
    .filter((f): f is RoutedFunction => !!f.route)
    .map(compile)
    .sort((a, b) => a.names.length - b.names.length);

  const matching = (path: string) =>
    routes.flatMap((r) => {
      const m = r.pattern.exec(path);
      return m ? [{ route: r, values: m.slice(1) }] : [];
    });

  return {
    match(method, path) {
      const candidates = matching(path);
      if (candidates.length === 0) return { kind: "not_found" };
      const hit = candidates.find((c) => c.route.fn.route.method === method.toUpperCase());
      if (!hit)
        return {
          kind: "method_not_allowed",
          allow: [...new Set(candidates.map((c) => c.route.fn.route.method))],
        };
      const pathParameters: Record<string, string> = {};
      hit.route.names.forEach((name, i) => {
        pathParameters[name] = decodeSegment(hit.values[i] ?? "");
      });
      const { fn } = hit.route;
      return { kind: "match", fn, routeKey: `${fn.route.method} ${fn.route.path}`, pathParameters };
    },
  };
}
