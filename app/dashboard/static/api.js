// The JSON API with the key from sessionStorage. A 401 forgets the key.

const KEY = "scalpel.apiKey";

export class ApiError extends Error {
  constructor(status, title, detail, code) {
    super(detail ? `${title}: ${detail}` : title);
    this.status = status;
    this.code = code;
  }
}

export const getKey = () => sessionStorage.getItem(KEY);
export const setKey = (key) => sessionStorage.setItem(KEY, key);
export const forgetKey = () => sessionStorage.removeItem(KEY);

async function request(path, accept, method = "GET") {
  const key = getKey();
  if (!key) throw new ApiError(401, "no API key");
  const res = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${key}`, Accept: accept },
    cache: "no-store",
  });
  if (!res.ok) {
    let title = res.statusText || `HTTP ${res.status}`;
    let detail = "";
    let code;
    try {
      const body = await res.json();
      title = body.title || title;
      detail = body.detail || "";
      code = body.code;
    } catch {
      // not a problem+json body
    }
    if (res.status === 401) {
      forgetKey();
      window.dispatchEvent(new Event("scalpel:unauthorized"));
    }
    throw new ApiError(res.status, title, detail, code);
  }
  return res;
}

export async function getJSON(path) {
  return (await request(path, "application/json")).json();
}

export async function postJSON(path) {
  return (await request(path, "application/json", "POST")).json();
}

export async function getBlob(path, type) {
  const blob = await (await request(path, "*/*")).blob();
  return type && blob.type !== type ? new Blob([blob], { type }) : blob;
}

const job = (id) => `/v1/jobs/${encodeURIComponent(id)}`;

export const listJobs = (limit = 50) => getJSON(`/v1/jobs?limit=${limit}`);
export const getJob = (id) => getJSON(job(id));
// queued: canceled at once (200); running: cancel_requested, it stops at its next step (202).
export const cancelJob = (id) => postJSON(`${job(id)}/cancel`);
// A JSON page of the job's events after event id `after` ({items, next_after}).
export const listEvents = (id, after = 0) => getJSON(`${job(id)}/events?after=${after}`);
export const listArtifacts = (id) => getJSON(`${job(id)}/artifacts`).then((page) => page.items);
export const getModel = (id) => getJSON(`/v1/models/${encodeURIComponent(id)}`);
export const getDataset = (id) => getJSON(`/v1/datasets/${encodeURIComponent(id)}`);
