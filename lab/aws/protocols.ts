/**
 * AWS wire protocols the endpoint speaks: JSON 1.0/1.1 (`X-Amz-Target: Prefix.Action`, e.g. SSM) and the query
 * protocol (form-encoded `Action=...`, XML answers, e.g. CloudWatch and STS). Services implement actions once over
 * plain objects; this module turns requests into those objects and results or errors into what botocore parses.
 */
import type { AuthFailureKind } from "./sigv4";

export type Protocol = "json" | "query";

/** An error an action (or the endpoint) answers with, in AWS's terms. */
export class AwsError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

export interface WireResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * The error code and status AWS answers an authentication failure with. JSON services and query services spell
 * them differently (SSM says UnrecognizedClientException where STS and CloudWatch say InvalidClientTokenId).
 */
export function authError(protocol: Protocol, kind: AuthFailureKind, message: string): AwsError {
  const json: Record<AuthFailureKind, [string, number]> = {
    missing: ["MissingAuthenticationTokenException", 400],
    incomplete: ["IncompleteSignatureException", 400],
    unknownKey: ["UnrecognizedClientException", 400],
    expiredToken: ["ExpiredTokenException", 400],
    badScope: ["InvalidSignatureException", 400],
    skew: ["InvalidSignatureException", 400],
    badSignature: ["InvalidSignatureException", 400],
  };
  const query: Record<AuthFailureKind, [string, number]> = {
    missing: ["MissingAuthenticationToken", 403],
    incomplete: ["IncompleteSignature", 400],
    unknownKey: ["InvalidClientTokenId", 403],
    expiredToken: ["ExpiredToken", 403],
    badScope: ["SignatureDoesNotMatch", 403],
    skew: ["SignatureDoesNotMatch", 403],
    badSignature: ["SignatureDoesNotMatch", 403],
  };
  const [code, status] = (protocol === "json" ? json : query)[kind];
  return new AwsError(code, message, status);
}

/** The AccessDenied error each protocol uses (SSM: AccessDeniedException; query services: AccessDenied, 403). */
export function accessDenied(protocol: Protocol, message: string): AwsError {
  return protocol === "json"
    ? new AwsError("AccessDeniedException", message, 400)
    : new AwsError("AccessDenied", message, 403);
}

// ------------------------------------------------------------------ JSON

export function jsonContentType(version: "1.0" | "1.1"): string {
  return `application/x-amz-json-${version}`;
}

/** `AmazonSSM.GetParameter` -> { prefix: "AmazonSSM", action: "GetParameter" }. */
export function parseTarget(target: string | undefined): { prefix: string; action: string } | undefined {
  if (!target) return undefined;
  const dot = target.lastIndexOf(".");
  if (dot <= 0) return undefined;
  return { prefix: target.slice(0, dot), action: target.slice(dot + 1) };
}

export function parseJsonBody(body: Buffer): Record<string, unknown> {
  if (body.length === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    throw new AwsError("SerializationException", "Request body is not valid JSON");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new AwsError("SerializationException", "Request body must be a JSON object");
  }
  return parsed as Record<string, unknown>;
}

export function jsonResult(version: "1.0" | "1.1", requestId: string, output: unknown): WireResponse {
  return {
    status: 200,
    headers: { "content-type": jsonContentType(version), "x-amzn-requestid": requestId },
    body: JSON.stringify(output ?? {}),
  };
}

export function jsonError(version: "1.0" | "1.1", requestId: string, err: AwsError): WireResponse {
  return {
    status: err.status,
    headers: { "content-type": jsonContentType(version), "x-amzn-requestid": requestId },
    body: JSON.stringify({ __type: err.code, message: err.message }),
  };
}

// ------------------------------------------------------------------ query

export function parseForm(body: Buffer, rawQuery: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const source of [rawQuery, body.toString("utf8")]) {
    for (const [k, v] of new URLSearchParams(source)) out[k] = v;
  }
  return out;
}

/**
 * Turns query-protocol parameters into the nested shape JSON services receive, so an action is written once:
 * `MetricData.member.1.Dimensions.member.2.Name=x` becomes `{ MetricData: [{ Dimensions: [, { Name: "x" }] }] }`.
 */
export function unflattenQuery(params: Record<string, string>): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(params)) {
    if (key === "Action" || key === "Version") continue;
    const parts = key.split(".");
    let cur: Record<string, unknown> | unknown[] = root;
    for (let i = 0; i < parts.length; i++) {
      const isList = parts[i + 1] === "member" && /^\d+$/.test(parts[i + 2] ?? "");
      const slot: string | number = Array.isArray(cur) ? Number(parts[i]) - 1 : parts[i];
      const container = cur as Record<string | number, unknown>;
      if (isList) {
        const list = (container[slot] ??= []) as unknown[];
        const idx = Number(parts[i + 2]) - 1;
        i += 2;
        if (i === parts.length - 1) {
          list[idx] = value;
          break;
        }
        cur = (list[idx] ??= {}) as Record<string, unknown>;
        continue;
      }
      if (i === parts.length - 1) container[slot] = value;
      else cur = (container[slot] ??= {}) as Record<string, unknown>;
    }
  }
  return root;
}

export function xmlEscape(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** Serialises an action's output the way query services do: elements per field, lists as `<member>`s. */
export function toXml(value: unknown): string {
  if (value === undefined || value === null) return "";
  if (Array.isArray(value)) return value.map((v) => `<member>${toXml(v)}</member>`).join("");
  if (typeof value === "object") {
    return Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `<${k}>${toXml(v)}</${k}>`)
      .join("");
  }
  // Only scalars are left here (objects and arrays were handled above).
  return xmlEscape(typeof value === "string" ? value : JSON.stringify(value));
}

export function queryResult(xmlns: string, action: string, requestId: string, output: unknown): WireResponse {
  const result = output === undefined ? "" : `<${action}Result>${toXml(output)}</${action}Result>`;
  return {
    status: 200,
    headers: { "content-type": "text/xml", "x-amzn-requestid": requestId },
    body:
      `<${action}Response xmlns="${xmlns}">${result}` +
      `<ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>`,
  };
}

export function queryError(xmlns: string, requestId: string, err: AwsError): WireResponse {
  const type = err.status >= 500 ? "Receiver" : "Sender";
  return {
    status: err.status,
    headers: { "content-type": "text/xml", "x-amzn-requestid": requestId },
    body:
      `<ErrorResponse xmlns="${xmlns}"><Error><Type>${type}</Type><Code>${xmlEscape(err.code)}</Code>` +
      `<Message>${xmlEscape(err.message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
  };
}
