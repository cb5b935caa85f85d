// REST calls (deployments/rest.py). Every failure becomes an ApiError with words fit to show.

export class ApiError extends Error {
  constructor(status, detail, fields = {}) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.fields = fields; // field name -> what is wrong with it (422 answers)
  }
}

const FIELD_NAMES = { username: "Username", password: "Password", locale: "Region" };

// FastAPI's 422 detail is a list of pydantic errors; Haven's typed errors carry a string.
function describe(status, body) {
  const detail = body && body.detail;
  if (typeof detail === "string") return new ApiError(status, detail);
  if (Array.isArray(detail)) {
    const fields = {};
    for (const item of detail) {
      const field = Array.isArray(item.loc) ? String(item.loc[item.loc.length - 1]) : "";
      const text = String(item.msg || "is not valid").replace(/^Value error, /, "");
      const key = field in FIELD_NAMES ? field : "form";
      fields[key] = fields[key] || text.charAt(0).toUpperCase() + text.slice(1) + ".";
    }
    const summary = Object.entries(fields)
      .map(([key, text]) => (key in FIELD_NAMES ? `${FIELD_NAMES[key]}: ${text}` : text))
      .join(" ");
    return new ApiError(status, summary || "Please check what you entered.", fields);
  }
  if (status >= 500) return new ApiError(status, "Haven is having trouble right now. Please try again.");
  return new ApiError(status, "Something went wrong. Please try again.");
}

async function call(method, path, { token, body } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
    });
  } catch {
    throw new ApiError(0, "Haven can't be reached. Please check your connection and try again.");
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) throw describe(response.status, data);
  return data;
}

export const api = {
  register: (username, password, locale) =>
    call("POST", "/auth/register", { body: locale ? { username, password, locale } : { username, password } }),
  login: (username, password) => call("POST", "/auth/login", { body: { username, password } }),
  logout: (token) => call("POST", "/auth/logout", { token }),
  sessions: (token) => call("GET", "/sessions", { token }),
  newSession: (token) => call("POST", "/sessions", { token }),
  messages: (token, sessionId) =>
    call("GET", `/sessions/${encodeURIComponent(sessionId)}/messages`, { token }),
  queue: (token) => call("GET", "/counsellor/queue", { token }),
};
