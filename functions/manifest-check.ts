import type { FunctionSpec } from "./manifest.ts";

/**
 * What API Gateway and Lambda refuse of a function list, checked where both readers (the CDK stack, the local
 * runner) start, so a new entry fails there with the entry's name instead of deploying or running otherwise:
 * - a name or route key twice (CDK would fail on a construct id naming neither entry; the runner served the first);
 * - two path variables of different names at one level, `/sessions/{id}/export` beside `/sessions/{session_id}`
 *   (API Gateway answers the deploy's route with a ConflictException; synth and the runner took it);
 * - more than one `$default` route.
 */
export function checkFunctions(list: readonly FunctionSpec[]): void {
  const problems: string[] = [];
  const names = new Set<string>();
  const routeKeys = new Map<string, string>();
  /** The variable's name at each level: the path up to it, literal segments kept, earlier variables as {}. */
  const variables = new Map<string, { variable: string; by: string }>();
  for (const f of list) {
    if (names.has(f.name)) problems.push(`the name ${f.name} is taken twice`);
    names.add(f.name);
    if (!f.route) continue;
    const key = `${f.route.method} ${f.route.path}`;
    const other = routeKeys.get(key);
    if (other !== undefined) problems.push(`${f.name}: route ${key} is ${other}'s already`);
    else routeKeys.set(key, f.name);
    let level = "";
    for (const segment of f.route.path.split("/").slice(1)) {
      const variable = /^\{([^}]+)\}$/.exec(segment)?.[1];
      if (variable !== undefined) {
        const there = variables.get(level);
        if (there && there.variable !== variable)
          problems.push(
            `${f.name}: {${variable}} in ${f.route.path} is {${there.variable}} at the same level in ${there.by}'s route (API Gateway refuses two names there)`,
          );
        else if (!there) variables.set(level, { variable, by: f.name });
      }
      level += `/${variable !== undefined ? "{}" : segment}`;
    }
  }
  const defaults = list.filter((f) => f.defaultRoute).map((f) => f.name);
  if (defaults.length > 1) problems.push(`more than one $default route: ${defaults.join(", ")}`);
  if (problems.length > 0) throw new Error(`functions/manifest.ts: ${problems.join("; ")}`);
}
