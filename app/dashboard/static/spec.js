// The job's resolved spec (every default filled in, as the worker runs it) as a collapsible
// tree: each object a <details> (the top level open), each value typed; `data-path` is the
// value's dotted path ("pruning.sparsity").

import { h } from "./dom.js";

function leaf(key, value, path) {
  const type = value === null ? "null" : typeof value;
  return h("span", { class: "json-leaf", "data-path": path },
    h("span", { class: "json-key" }, `${key}: `),
    h("span", { class: `json-value json-${type}` }, JSON.stringify(value)));
}

function node(key, value, path, depth) {
  if (value === null || typeof value !== "object") return leaf(key, value, path);
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
  if (entries.length === 0) return leaf(key, value, path);
  const size = Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`;
  return h(
    "details",
    { class: "json-node", "data-path": path, open: depth === 0 },
    h("summary", {}, h("span", { class: "json-key" }, key), " ", h("span", { class: "muted" }, size)),
    h("ul", { class: "json-children" }, entries.map(([k, v]) =>
      h("li", {}, node(k, v, path ? `${path}.${k}` : k, depth + 1)))),
  );
}

export function specTree(spec) {
  if (!spec || typeof spec !== "object" || Object.keys(spec).length === 0) {
    return h("p", { class: "empty" }, "No spec.");
  }
  return h("div", { class: "spec-tree" }, node("spec", spec, "", 0));
}
