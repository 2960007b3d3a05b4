// The portal's only way to the server: the public HTTP API, same origin, JSON in and out.
// Cookie-authenticated writes carry the session's CSRF token; problem+json errors become
// ApiError with the problem's stable `type` slug.

let csrfToken = null;

export class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super((problem && problem.detail) || `request failed (${status})`);
    this.status = status;
    this.problem = problem || {};
    this.retryAfter = retryAfter;
  }

  /// The last segment of the problem's `type`, e.g. `invite-gone`.
  get slug() {
    const type = this.problem.type || '';
    return type.slice(type.lastIndexOf('/') + 1);
  }
}

export function setCsrf(token) {
  csrfToken = token;
}

export function hasSession() {
  return csrfToken !== null;
}

export async function api(method, path, { body, idempotencyKey } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  if (idempotencyKey) headers['Idempotency-Key'] = idempotencyKey;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, { detail: 'The server cannot be reached. Check your connection and try again.' });
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const retry = Number.parseInt(response.headers.get('Retry-After') || '', 10);
    throw new ApiError(response.status, data, Number.isFinite(retry) ? retry : undefined);
  }
  return data;
}
