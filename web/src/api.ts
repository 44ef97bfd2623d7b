// The REST API as the UI uses it: the session cookie goes along by itself; unsafe requests
// carry the session's CSRF token; a 401 means the session is gone and the app signs in again.

export interface FieldError {
  path: string;
  message: string;
}

export class ApiError extends Error {
  status: number;
  code: string;
  errors: FieldError[];
  constructor(status: number, code: string, message: string, errors: FieldError[]) {
    super(message);
    this.status = status;
    this.code = code;
    this.errors = errors;
  }
  /** The message for one field, if the server named it. */
  field(path: string): string | undefined {
    return this.errors.find((e) => e.path === path)?.message;
  }
}

let csrf = '';
export function setCsrf(token: string) {
  csrf = token;
}

/** Fired when the server no longer knows the session. */
export const SESSION_LOST = 'alertflow:session-lost';

export async function api<T = unknown>(
  method: string,
  path: string,
  body?: unknown,
  opts: { raw?: boolean; contentType?: string } = {},
): Promise<T> {
  const headers: Record<string, string> = {};
  if (method !== 'GET' && method !== 'HEAD') headers['x-csrf-token'] = csrf;
  let payload: BodyInit | undefined;
  if (typeof body === 'string') {
    payload = body;
    headers['content-type'] = opts.contentType ?? 'application/yaml';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['content-type'] = 'application/json';
  }
  const resp = await fetch(`/api/v1${path}`, { method, headers, body: payload, credentials: 'same-origin' });
  if (resp.status === 401 && path !== '/session') {
    window.dispatchEvent(new Event(SESSION_LOST));
  }
  const text = await resp.text();
  if (!resp.ok) {
    let parsed: { code?: string; message?: string; errors?: FieldError[] } = {};
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = { message: text || resp.statusText };
    }
    throw new ApiError(resp.status, parsed.code ?? 'error', parsed.message ?? resp.statusText, parsed.errors ?? []);
  }
  if (opts.raw) return text as T;
  return (text ? JSON.parse(text) : null) as T;
}

export interface Session {
  user: string;
  role: 'admin' | 'editor' | 'viewer';
  csrf: string | null;
  public_url: string;
}

export interface Key {
  name: string;
  value?: string;
  created_at: string;
  last_used_at: string | null;
}

export interface WorkflowSummary {
  id: string;
  version: number;
  description: string | null;
  trigger: string;
  steps: number;
  webhook_url: string | null;
  created_at: string;
  updated_at: string;
  document?: WorkflowDoc;
  source?: string;
}

export interface Step {
  id: string;
  uses: string;
  name?: string;
  with?: Record<string, unknown>;
  needs?: string[];
  if?: string;
  retry?: { attempts: number; backoff?: string; max_backoff?: string };
  timeout?: string;
  on_error?: string;
  [key: string]: unknown;
}

export interface Trigger {
  type: string;
  api_keys?: string[];
  split?: string;
  when?: string;
  dedupe_window?: string;
  cron?: string;
  timezone?: string;
  every?: string;
  [key: string]: unknown;
}

export interface WorkflowDoc {
  name: string;
  description?: string;
  timeout?: string;
  trigger: Trigger;
  steps: Step[];
  [key: string]: unknown;
}

export interface StepRun {
  id: string;
  uses: string;
  status: string;
  attempts: number;
  input: unknown;
  output: unknown;
  error: string | null;
  started_at: string | null;
  finished_at: string | null;
  attempt_log?: unknown;
}

export interface Execution {
  id: string;
  workflow: string;
  version: number;
  status: string;
  trigger: { type: string; event_id: string | null };
  error: string | null;
  replay_of?: string;
  input?: unknown;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  steps?: StepRun[];
}

export interface EventRow {
  id: string;
  workflow: string;
  outcome: string;
  status_code: number;
  reason: string | null;
  executions: string[];
  received_at: string;
}

export interface JsonSchema {
  type?: string | string[];
  enum?: unknown[];
  format?: string;
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  [key: string]: unknown;
}

export interface DocumentSchema {
  'x-actions': Record<string, { inputs: JsonSchema; outputs: JsonSchema }>;
}
