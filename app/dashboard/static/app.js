// Entry point: ask for the key once per tab, then route on the hash (#/ or #/jobs/{id}).

import { forgetKey, getKey, setKey } from "./api.js";
import { clear, h } from "./dom.js";
import { showJob } from "./job.js";
import { showJobs } from "./jobs.js";

const view = document.getElementById("view");
const login = document.getElementById("login");
const logout = document.getElementById("logout");
const loginError = document.getElementById("login-error");
const banner = h("p", { id: "banner", class: "error", role: "alert", hidden: true });
view.before(banner);
let stop = () => {};

function showError(err) {
  banner.textContent = err && err.message ? err.message : String(err);
  banner.hidden = false;
}

function askForKey(message) {
  stop();
  stop = () => {};
  clear(view);
  banner.hidden = true;
  login.hidden = false;
  logout.hidden = true;
  loginError.textContent = message || "";
  document.getElementById("api-key").focus();
}

function route() {
  stop();
  banner.hidden = true;
  if (!getKey()) {
    askForKey();
    return;
  }
  login.hidden = true;
  logout.hidden = false;
  const match = /^#\/jobs\/([^/]+)$/.exec(location.hash);
  stop = match ? showJob(view, decodeURIComponent(match[1]), showError) : showJobs(view, showError);
}

login.addEventListener("submit", (e) => {
  e.preventDefault();
  const input = document.getElementById("api-key");
  const key = input.value.trim();
  if (!key) return;
  setKey(key);
  input.value = "";
  route();
});
logout.addEventListener("click", () => {
  forgetKey();
  askForKey();
});
window.addEventListener("scalpel:unauthorized", () => askForKey("That key was not accepted."));
window.addEventListener("hashchange", route);
route();
