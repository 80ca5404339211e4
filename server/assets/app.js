// Entry point: the session, the three views and the URL that selects them
// (`/` Activity with its filters, `/?view=dashboard`, `/?view=settings`).

import { api, get, onSessionEnded } from "./api.js";
import * as bus from "./bus.js";
import { mountActivity } from "./activity.js";
import { mountDashboard } from "./dashboard.js";
import { mountSettings } from "./settings.js";
import { closeDrawer } from "./drawer.js";
import { h, replace, statusBlock } from "./dom.js";
import { refreshTimes } from "./format.js";
import { setKeyListing } from "./provenance.js";
import { showSignIn } from "./signin.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const signOut = document.getElementById("sign-out");
const busState = document.getElementById("bus-state");

const VIEWS = { activity: mountActivity, dashboard: mountDashboard, settings: mountSettings };
const TITLES = { activity: "Activity", dashboard: "Dashboard", settings: "Settings" };

let current = null; // { name, view }
let role = null; // "admin" | "reader"
let signedIn = false;

const viewName = () => {
  const v = new URLSearchParams(location.search).get("view");
  return Object.hasOwn(VIEWS, v ?? "") ? v : "activity";
};

function route() {
  if (!signedIn) return;
  const name = viewName();
  for (const a of nav.querySelectorAll("a")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `${TITLES[name]} · actlog`;
  if (current && current.name === name) {
    if (current.view.update) current.view.update();
    return;
  }
  unmount();
  closeDrawer();
  const section = h("section", { class: `view view-${name}` });
  replace(main, section);
  current = { name, view: VIEWS[name](section, { role }) };
}

function unmount() {
  if (current) current.view.unmount();
  current = null;
}

nav.addEventListener("click", (ev) => {
  const a = ev.target.closest("a[data-view]");
  if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
  ev.preventDefault();
  if (a.dataset.view !== viewName() || location.search !== new URL(a.href).search) {
    history.pushState(null, "", a.getAttribute("href"));
  }
  route();
  main.focus({ preventScroll: true });
});
window.addEventListener("popstate", route);

// Links inside the app to one of its views stay in the page.
main.addEventListener("click", (ev) => {
  const a = ev.target.closest("a[href]");
  if (!a || a.hasAttribute("download") || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
  const href = a.getAttribute("href");
  if (href !== "/" && !href.startsWith("/?")) return;
  ev.preventDefault();
  history.pushState(null, "", href);
  route();
  window.scrollTo(0, 0);
});

signOut.addEventListener("click", async () => {
  try {
    await api("DELETE", "/session");
  } catch {
    // signed out locally either way
  }
  toSignIn("You signed out.");
});

let endingSession = false;
onSessionEnded(() => {
  if (!signedIn || endingSession) return;
  endingSession = true;
  toSignIn("Your session ended: it expired, the server restarted, or its key was revoked. Sign in again.");
});

function toSignIn(notice) {
  signedIn = false;
  setKeyListing(false);
  unmount();
  closeDrawer();
  bus.disconnect();
  nav.hidden = true;
  signOut.hidden = true;
  busState.hidden = true;
  document.title = "Sign in · actlog";
  showSignIn(main, notice).then(start);
}

bus.onState((up) => {
  busState.textContent = up ? "Connected" : "Disconnected — reconnecting";
  busState.className = `bus-state ${up ? "up" : "down"}`;
});

/** Whether the session still works (after the bus closed). */
async function sessionAlive() {
  try {
    await get("/activity/stats");
    return true;
  } catch (e) {
    return e.status !== 401 && e.status !== 403;
  }
}

/** Probes the session and the role, then shows the app or the sign-in form. */
async function start() {
  endingSession = false;
  replace(main, statusBlock("loading", "Loading…"));
  // Both probes at once: reading needs reader, settings need admin.
  const [read, admin] = await Promise.allSettled([get("/activity/stats"), get("/activity/settings")]);
  if (read.status === "rejected") {
    const e = read.reason;
    if (e.status === 401) {
      toSignIn(null);
    } else if (e.status === 403) {
      await api("DELETE", "/session").catch(() => {});
      toSignIn("That key can only send events (writer role). Sign in with a reader or admin key to view activity.");
    } else {
      replace(main, statusBlock("error", `The server did not answer: ${e.message}`,
        h("button", { type: "button", onclick: start }, "Try again")));
    }
    return;
  }
  role = admin.status === "fulfilled" ? "admin" : "reader";
  // Only an admin may list keys, which gives recorded_by ids their labels.
  setKeyListing(role === "admin");
  signedIn = true;
  nav.hidden = false;
  signOut.hidden = false;
  busState.hidden = false;
  nav.querySelector('[data-view="settings"]').hidden = role !== "admin";
  bus.connect(sessionAlive);
  route();
}

setInterval(() => refreshTimes(main), 30_000);
start();
