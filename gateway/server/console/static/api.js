// The admin API (/api/v1) as the console uses it: same-origin fetch with the session cookie,
// and the CSRF header (from GET /api/v1/whoami) on every call that is not a GET.

let csrf = "";

export class ApiError extends Error {
  constructor(status, problem) {
    const detail = problem && typeof problem === "object"
      ? problem.detail || problem.title || `HTTP ${status}`
      : `HTTP ${status}`;
    super(detail);
    this.status = status;
    this.problem = problem;
  }
}

export function setCsrf(value) {
  csrf = value || "";
}

/** Query parameters without the empty ones. */
function url(path, query) {
  const u = new URL(`/api/v1${path}`, window.location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") u.searchParams.set(key, value);
  }
  return u;
}

export async function api(method, path, {query, body} = {}) {
  const headers = {Accept: "application/json"};
  const init = {method, headers, credentials: "same-origin", cache: "no-store", redirect: "error"};
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url(path, query), init);
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await response.json().catch(() => null) : await response.text();
  if (response.status === 401) {
    // The session's token expired or was revoked: back to the sign-in page.
    window.location.assign("/console/");
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (path, query) => api("GET", path, {query});
export const post = (path, body) => api("POST", path, {body});

/** The items of a list answer ({items, next}) or a bare list. */
export function items(data) {
  if (Array.isArray(data)) return data;
  if (data && Array.isArray(data.items)) return data.items;
  return [];
}
