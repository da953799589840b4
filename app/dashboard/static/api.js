// The JSON API with the key from sessionStorage. A 401 forgets the key.

const KEY = "scalpel.apiKey";

export class ApiError extends Error {
  constructor(status, title, detail) {
    super(detail ? `${title}: ${detail}` : title);
    this.status = status;
  }
}

export const getKey = () => sessionStorage.getItem(KEY);
export const setKey = (key) => sessionStorage.setItem(KEY, key);
export const forgetKey = () => sessionStorage.removeItem(KEY);

async function request(path, accept) {
  const key = getKey();
  if (!key) throw new ApiError(401, "no API key");
  const res = await fetch(path, {
    headers: { Authorization: `Bearer ${key}`, Accept: accept },
    cache: "no-store",
  });
  if (!res.ok) {
    let title = res.statusText || `HTTP ${res.status}`;
    let detail = "";
    try {
      const body = await res.json();
      title = body.title || title;
      detail = body.detail || "";
    } catch {
      // not a problem+json body
    }
    if (res.status === 401) {
      forgetKey();
      window.dispatchEvent(new Event("scalpel:unauthorized"));
    }
    throw new ApiError(res.status, title, detail);
  }
  return res;
}

export async function getJSON(path) {
  return (await request(path, "application/json")).json();
}

export async function getBlob(path, type) {
  const blob = await (await request(path, "*/*")).blob();
  return type && blob.type !== type ? new Blob([blob], { type }) : blob;
}

export const listJobs = (limit = 50) => getJSON(`/v1/jobs?limit=${limit}`);
export const getJob = (id) => getJSON(`/v1/jobs/${encodeURIComponent(id)}`);
export const listArtifacts = (id) =>
  getJSON(`/v1/jobs/${encodeURIComponent(id)}/artifacts`).then((page) => page.items);
