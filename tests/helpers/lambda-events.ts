import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import { findFunction, httpFunctions } from "../../functions/manifest.ts";
import { buildHttpApiEvent, newApiGatewayRequestId } from "../../local/api-gateway-event.ts";
import { createLambdaContext } from "../../local/lambda-context.ts";

/**
 * API Gateway v2 events and Lambda contexts for calling handlers directly, built by the same code the
 * local runner uses, with the route taken from the manifest.
 */
export function httpEvent(
  method: string,
  url: string,
  opts: { body?: string | Buffer | object; headers?: Record<string, string>; sourceIp?: string } = {},
): APIGatewayProxyEventV2 {
  const path = url.split("?")[0] ?? url;
  const route = httpFunctions.find((f) => f.route.method === method && matchPath(f.route.path, path));
  if (!route) throw new Error(`no manifest route for ${method} ${path}`);
  const body =
    opts.body === undefined
      ? Buffer.alloc(0)
      : Buffer.isBuffer(opts.body)
        ? opts.body
        : Buffer.from(typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body));
  const headers = {
    ...(opts.body !== undefined && typeof opts.body === "object" && !Buffer.isBuffer(opts.body)
      ? { "content-type": "application/json" }
      : {}),
    ...opts.headers,
  };
  return buildHttpApiEvent(
    { method, url, headers, body, sourceIp: opts.sourceIp ?? "127.0.0.1" },
    {
      routeKey: `${route.route.method} ${route.route.path}`,
      pathParameters: matchPath(route.route.path, path) ?? {},
      requestId: newApiGatewayRequestId(),
    },
  );
}

function matchPath(template: string, path: string): Record<string, string> | null {
  const t = template.split("/");
  const p = path.split("/");
  if (t.length !== p.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < t.length; i++) {
    const seg = t[i] as string;
    const val = p[i] as string;
    if (seg.startsWith("{")) params[seg.slice(1, -1)] = decodeURIComponent(val);
    else if (seg !== val) return null;
  }
  return params;
}

export function lambdaContext(name: string, timeoutMs = 10_000): Context {
  const spec = findFunction(name);
  if (!spec) throw new Error(`no function ${name} in the manifest`);
  return createLambdaContext(spec, {
    awsRequestId: crypto.randomUUID(),
    deadline: Date.now() + timeoutMs,
    logStreamName: "test",
  });
}

export type HttpLambda = (
  event: APIGatewayProxyEventV2,
  context: Context,
) => Promise<APIGatewayProxyStructuredResultV2>;

/** Calls a handler and parses its JSON body. */
export async function call(handler: HttpLambda, name: string, event: APIGatewayProxyEventV2) {
  const res = await handler(event, lambdaContext(name));
  // header names are case-insensitive; compare them lower-cased as an HTTP client would
  const headers = Object.fromEntries(
    Object.entries(res.headers ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]),
  );
  return { ...res, json: res.body ? JSON.parse(res.body) : undefined, headers };
}
