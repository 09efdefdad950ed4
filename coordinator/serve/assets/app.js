// seedgrid serve: the page. Plain DOM, no framework, no network beyond this server's /api/.
// Every string from the registry goes in through textContent (never parsed as HTML), so params
// and error texts cannot inject markup. Live: /api/version (SQLite's data_version) is polled
// twice a second and the current view re-fetched when it changes.
"use strict";

const STATUSES = ["done", "running", "failed", "preempted", "pending"];
const state = { version: null, shardFilter: "", shardAfter: [0], openLogs: new Set(), busy: false };

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined) continue;
    e.appendChild(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

async function api(path) {
  const r = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

const fmtInt = (n) => Number(n).toLocaleString("en-US");
function fmtDur(s) {
  if (s === null || s === undefined) return "–";
  s = Math.round(s);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}
function fmtTime(unix) {
  if (!unix) return "–";
  return new Date(unix * 1000).toISOString().replace("T", " ").slice(0, 19);
}
const fmtAxes = (a) => Object.entries(a || {}).map(([k, v]) => `${k}=${fmtVal(v)}`).join("  ") || "–";
function fmtVal(v) {
  if (v === null) return "null";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(6).replace(/\.?0+$/, "");
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

function bar(counts, total) {
  return el("div", { class: "bar", title: STATUSES.map((s) => `${s} ${counts[s] || 0}`).join(", ") },
    STATUSES.map((s) => {
      if (!counts[s]) return null;
      const seg = el("span", { class: s });
      seg.style.width = `${(100 * counts[s]) / Math.max(total, 1)}%`;  // CSSOM: allowed by the page's CSP
      return seg;
    }));
}
const badge = (s) => el("span", { class: "badge " + s }, s);
const shardLink = (id, text) => el("a", { href: "#/shard/" + encodeURIComponent(id), class: "mono" }, text || id.slice(0, 12));
const sweepLink = (name) => el("a", { href: "#/sweep/" + encodeURIComponent(name) }, name);

function crumbs(...parts) {
  const c = document.getElementById("crumbs");
  c.replaceChildren(...parts.flatMap((p, i) => (i ? [el("span", { class: "sep" }, "/"), p] : [p])));
}

function table(headers, rows, opts) {
  return el("div", { class: "tablewrap" },
    el("table", opts || {},
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { class: /^(#|shards|done|running|failed|pending|preempted|count|attempts|exit|workers|value|size)/i.test(h) ? "num" : null }, h)))),
      el("tbody", {}, rows.length ? rows : [el("tr", {}, el("td", { colspan: headers.length, class: "empty" }, "none"))])));
}

function tiles(s) {
  const t = s.totals;
  const tile = (cls, k, v, id) => el("div", { class: "tile " + cls }, el("div", { class: "v", id }, v), el("div", { class: "k" }, k));
  return el("div", { class: "tiles" },
    tile("", "shards", fmtInt(s.total), "tot-total"),
    tile("done", "done", fmtInt(t.done), "tot-done"),
    tile("running", "running", fmtInt(t.running), "tot-running"),
    tile("failed", "failed", fmtInt(t.failed), "tot-failed"),
    tile("", "pending", fmtInt(t.pending + t.preempted), "tot-pending"),
    tile("", "throughput", s.throughput ? s.throughput.toFixed(2) + "/s" : "–", "throughput"),
    tile("", "ETA", s.eta_s === 0 ? "finished" : fmtDur(s.eta_s), "eta"));
}

function launchTable(launches) {
  return table(["#", "started", "ended", "host", "pid", "workers", "job", "exit"],
    launches.slice(-10).reverse().map((l) => el("tr", {},
      el("td", { class: "num" }, l.id), el("td", {}, l.started), el("td", {}, l.ended || (l.exit_code === null ? "running" : "")),
      el("td", {}, l.host), el("td", { class: "num" }, l.pid), el("td", { class: "num" }, l.workers),
      el("td", {}, l.job_id || "–"), el("td", { class: "num" }, l.exit_code === null ? "–" : l.exit_code))));
}

async function viewSweeps() {
  crumbs(el("span", {}, "sweeps"));
  const d = await api("/api/sweeps");
  const cards = d.sweeps.map((s) => el("div", { class: "card sweep-card" },
    el("div", { class: "row" }, el("h3", {}, sweepLink(s.name)), s.running ? badge("running") : null,
      el("span", { class: "muted" }, `created ${s.created}`), el("span", { class: "muted mono" }, s.spec_hash.slice(0, 12))),
    tiles(s), bar(s.totals, s.total),
    el("table", { class: "kv", style: "margin-top:10px" }, el("tbody", {},
      s.stages.map((g) => el("tr", {}, el("td", {}, g.stage), el("td", {}, bar(g.counts, g.total)),
        el("td", { class: "num" }, `${fmtInt(g.counts.done)} / ${fmtInt(g.total)}`))))),
    s.launches.length ? el("details", {}, el("summary", { class: "muted" }, `${s.launches.length} launch(es)`), launchTable(s.launches)) : null));
  return [el("h1", {}, "Sweeps"), el("div", { class: "sub" }, el("span", {}, `${d.sweeps.length} in this registry`)),
    cards.length ? cards : el("p", { class: "empty" }, "No sweep yet: start one with seedgrid run <spec.yaml>.")];
}

async function shardBrowser(name, stage) {
  const after = state.shardAfter[state.shardAfter.length - 1];
  const q = new URLSearchParams({ limit: "50", after: String(after) });
  if (state.shardFilter) q.set("status", state.shardFilter);
  const d = await api(`/api/sweeps/${encodeURIComponent(name)}/shards?${q}`);
  const rerender = () => route();
  const filters = el("div", { class: "filters" }, ["", ...STATUSES].map((s) => el("button", {
    class: state.shardFilter === s ? "on" : null,
    onclick: () => { state.shardFilter = s; state.shardAfter = [0]; rerender(); } }, s || "all")),
    el("span", { style: "flex:1" }),
    el("button", { disabled: state.shardAfter.length === 1, onclick: () => { state.shardAfter.pop(); rerender(); } }, "‹ prev"),
    el("button", { disabled: d.next_after === null, onclick: () => { state.shardAfter.push(d.next_after); rerender(); } }, "next ›"));
  const rows = d.shards.map((s) => el("tr", {}, el("td", {}, shardLink(s.id)), el("td", {}, s.stage), el("td", {}, badge(s.status)),
    el("td", { class: "num" }, s.attempts), el("td", { class: "mono" }, fmtAxes(s.axes)), el("td", {}, fmtTime(s.updated))));
  return [filters, table(["shard", "stage", "status", "attempts", "axes", "updated (UTC)"], rows)];
}

async function viewSweep(name) {
  crumbs(el("a", { href: "#/" }, "sweeps"), el("span", {}, name));
  const s = await api("/api/sweeps/" + encodeURIComponent(name));
  const out = [el("h1", {}, s.name, " ", s.running ? badge("running") : null),
    el("div", { class: "sub" }, el("span", {}, `created ${s.created}`), el("span", {}, `updated ${s.updated}`),
      el("span", { class: "mono" }, `spec ${s.spec_hash.slice(0, 12)}`), el("span", {}, s.out_dir + "/" + s.name)),
    tiles(s), bar(s.totals, s.total)];
  out.push(el("h2", {}, "Stages"), table(["stage", "kind", "progress", ...STATUSES, "shards"],
    s.stages.map((g) => el("tr", {}, el("td", {}, g.stage), el("td", {}, g.kind), el("td", {}, bar(g.counts, g.total)),
      STATUSES.map((st) => el("td", { class: "num" }, fmtInt(g.counts[st]))), el("td", { class: "num" }, fmtInt(g.total))))));
  out.push(el("h2", {}, `Failed shards (${fmtInt(s.totals.failed)})`), table(["shard", "stage", "attempts", "error", "logs"],
    s.failed.map((f) => el("tr", { class: "failed-row" }, el("td", {}, shardLink(f.id)), el("td", {}, f.stage), el("td", { class: "num" }, f.attempts),
      el("td", {}, el("div", { class: "err" }, f.error)), el("td", {}, el("a", { href: "#/shard/" + encodeURIComponent(f.id) + "/logs", class: "log-link" }, "logs"))))));
  out.push(...liveSection(await api(`/api/sweeps/${encodeURIComponent(name)}/live`), true));
  if (s.report) {
    out.push(el("h2", {}, "Report"));
    out.push(el("div", { class: "figs" }, s.report.figures.map((f) => el("figure", {}, el("a", { href: f.url, target: "_blank" }, el("img", { src: f.url, alt: f.name, loading: "lazy" })), el("figcaption", {}, f.name)))));
    for (const t of s.report.tables) out.push(el("details", {}, el("summary", {}, t.name), el("pre", {}, t.text)));
    if (s.report.documents.length) out.push(el("p", {}, "Documents: ", s.report.documents.map((d, i) => [i ? " · " : "", el("a", { href: d.url, target: "_blank" }, d.name)])));
  }
  out.push(el("h2", {}, "Shards"), ...(await shardBrowser(name)));
  out.push(el("h2", {}, "Launches"), launchTable(s.launches));
  if (s.slurm_jobs.length) out.push(el("h2", {}, "Slurm jobs"), table(["job", "submitted", "mode", "nodes", "log"],
    s.slurm_jobs.map((j) => el("tr", {}, el("td", {}, j.job_id), el("td", {}, j.submitted), el("td", {}, j.mode), el("td", { class: "num" }, j.nodes), el("td", { class: "mono" }, j.log)))));
  out.push(el("details", {}, el("summary", {}, "Spec"), el("pre", {}, s.spec_text)));
  return out;
}

async function viewShard(id, focusLogs) {
  const s = await api("/api/shards/" + encodeURIComponent(id));
  state.follow = s.status === "running";
  crumbs(el("a", { href: "#/" }, "sweeps"), sweepLink(s.sweep), el("span", { class: "mono" }, s.id.slice(0, 12)));
  const kv = (obj) => table(["name", "value"], Object.entries(obj).map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", { class: "mono" }, fmtVal(v)))), { class: "kv" });
  const out = [el("h1", { class: "mono" }, s.id.slice(0, 16), " ", badge(s.status)),
    el("div", { class: "sub" }, el("span", {}, `${s.kind} · stage ${s.stage}`), el("span", {}, `seed ${s.seed}`),
      el("span", {}, `${s.attempts_charged} charged attempt(s)`), el("span", {}, `updated ${fmtTime(s.updated)} UTC`))];
  if (s.error) out.push(el("div", { class: "card" }, el("div", { class: "err", id: "shard-error" }, s.error)));
  out.push(el("div", { class: "grid2" }, el("div", {}, el("h2", {}, "Params"), kv(s.params)),
    el("div", {}, el("h2", {}, "Metrics"), kv(s.metrics), el("h2", {}, "Files"),
      table(["file", "size"], s.files.map((f) => el("tr", {}, el("td", {}, el("a", { href: f.url }, f.name)), el("td", { class: "num" }, fmtInt(f.size))))))));
  if (s.curves.length) out.push(el("h2", {}, "Curves"), el("div", { class: "figs" }, s.curves.map((c) => chart(c))));
  if (s.status !== "done") out.push(...liveSection({ shards: [{ id: s.id, stage: s.stage, curves: (await api(`/api/shards/${encodeURIComponent(s.id)}/live`)).curves }] }, false));
  out.push(el("h2", {}, "Attempts"), table(["#", "outcome", "host", "rank", "gpu", "start (UTC)", "seconds", "exit", "error"],
    s.attempts.map((a) => el("tr", {}, el("td", { class: "num" }, a.n), el("td", {}, el("span", { class: "badge " + (a.outcome === "ok" ? "done" : a.outcome === "preempted" ? "preempted" : "failed") }, a.outcome)),
      el("td", {}, a.host), el("td", { class: "num" }, a.rank), el("td", {}, a.gpu || "–"), el("td", {}, fmtTime(a.start)),
      el("td", { class: "num" }, a.end ? (a.end - a.start).toFixed(2) : "–"), el("td", { class: "num" }, a.signal ? "sig " + a.signal : a.exit_code),
      el("td", {}, el("div", { class: "err" }, a.error))))));
  out.push(el("h2", { id: "logs" }, "Logs"));
  if (!s.logs.length) out.push(el("p", { class: "empty" }, "No per-attempt logs for this shard."));
  for (const l of s.logs) {
    const open = state.openLogs.has(l.url) || focusLogs || l === s.logs[s.logs.length - 1];
    const d = el("details", { open, class: "log" }, el("summary", {}, l.name, " ", el("span", { class: "muted" }, `${fmtInt(l.size)} bytes`), " ", el("a", { href: l.url, target: "_blank" }, "raw")),
      el("pre", { class: "log-tail" }, (l.truncated ? "…\n" : "") + (l.tail || "(empty)")));
    d.addEventListener("toggle", () => (d.open ? state.openLogs.add(l.url) : state.openLogs.delete(l.url)));
    out.push(d);
  }
  out.push(el("details", {}, el("summary", {}, "Axes, needs, artifact"), kv({ axes: s.axes, needs: s.needs, role: s.role, artifact: s.artifact })));
  return out;
}

// Live curves of running shards (pushed by the workers, at most once a second each): on the sweep
// page a card per running shard, on a shard page its attempts' curves; redrawn on every poll
// that finds the registry changed, so they grow without a reload.
function liveSection(d, perShard) {
  const shards = d.shards.filter((sh) => sh.curves.length);
  if (!shards.length) return [];
  const caption = (c) => `${c.name} · attempt ${c.attempt} · step ${fmtInt(c.latest.step)}: ${Number(c.latest.value).toPrecision(4)}`;
  const figs = (sh) => el("div", { class: "figs" }, sh.curves.map((c) => chart(c, caption(c), "live-curve")));
  const body = perShard
    ? shards.map((sh) => el("div", { class: "card live-shard" }, el("div", { class: "row" }, shardLink(sh.id), el("span", { class: "muted" }, sh.stage), badge("running")), figs(sh)))
    : [figs(shards[0])];
  return [el("h2", { id: "live-curves" }, "Live curves"), ...body];
}

// A curve as an inline SVG line chart (elements made with createElementNS: no markup parsed).
function chart(c, caption, cls) {
  const NS = "http://www.w3.org/2000/svg", W = 520, H = 180, P = 56;
  const svg = (tag, attrs) => { const e = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); return e; };
  const xs = c.steps, ys = c.values.map((v) => (v === null ? NaN : v));
  const finite = ys.filter(Number.isFinite);
  const lo = Math.min(...finite), hi = Math.max(...finite), span = hi - lo || 1, xmax = Math.max(xs[xs.length - 1], 1);
  const X = (x) => P + ((W - P - 8) * x) / xmax, Y = (y) => 8 + (H - P) * (1 - (y - lo) / span);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" });
  root.appendChild(svg("line", { x1: P, y1: H - P + 8, x2: W - 8, y2: H - P + 8, class: "axis" }));
  root.appendChild(svg("line", { x1: P, y1: 8, x2: P, y2: H - P + 8, class: "axis" }));
  const pts = xs.map((x, i) => (Number.isFinite(ys[i]) ? `${X(x).toFixed(1)},${Y(ys[i]).toFixed(1)}` : null)).filter(Boolean);
  root.appendChild(svg("polyline", { points: pts.join(" "), class: "curve" }));
  for (const [v, y] of [[hi, 12], [lo, H - P + 8]]) {
    const t = svg("text", { x: P - 4, y, class: "tick", "text-anchor": "end" });
    t.textContent = Number(v).toPrecision(3);
    root.appendChild(t);
  }
  const t = svg("text", { x: W - 8, y: H - 6, class: "tick", "text-anchor": "end" });
  t.textContent = `step ${fmtInt(xs[xs.length - 1])}`;
  root.appendChild(t);
  return el("figure", { class: "curvefig" + (cls ? " " + cls : ""), "data-points": String(pts.length) }, root, el("figcaption", {}, caption || c.name));
}

let lastRoute = "";
let routeSeq = 0;
async function route() {
  // Renders may overlap (a poll's and a click's): only the latest one started may draw, or a
  // slow answer for the previous view would replace the new one.
  const seq = ++routeSeq;
  const h = decodeURIComponent(location.hash.replace(/^#\/?/, ""));
  const parts = h.split("/");
  if (h !== lastRoute && !h.startsWith(lastRoute.split("/").slice(0, 2).join("/"))) { state.shardFilter = ""; state.shardAfter = [0]; }
  const main = document.getElementById("main");
  try {
    let nodes;
    if (parts[0] === "sweep" && parts[1]) nodes = await viewSweep(parts[1]);
    else if (parts[0] === "shard" && parts[1]) nodes = await viewShard(parts[1], parts[2] === "logs");
    else nodes = await viewSweeps();
    if (parts[0] !== "shard") state.follow = false;
    if (seq !== routeSeq) return;
    // Keep the reader's place: scroll position and any log scrolled to its end.
    const y = window.scrollY;
    main.replaceChildren(...nodes.flat());
    if (h === lastRoute) window.scrollTo(0, y);
    else if (parts[2] === "logs") document.getElementById("logs")?.scrollIntoView();
    for (const p of main.querySelectorAll("pre.log-tail")) p.scrollTop = p.scrollHeight;
    lastRoute = h;
  } catch (e) {
    if (seq !== routeSeq) return;
    main.replaceChildren(el("div", { class: "card" }, el("div", { class: "err" }, String(e.message || e))));
  }
}

async function poll() {
  const live = document.getElementById("live");
  try {
    const v = await api("/api/version");
    live.className = "live on";
    live.textContent = "live";
    if (v.version !== state.version && !state.busy) {
      state.version = v.version;
      state.busy = true;
      try { await route(); } finally { state.busy = false; }
    }
  } catch (e) {
    live.className = "live off";
    live.textContent = "disconnected";
  }
}

window.addEventListener("hashchange", () => route());
route();
setInterval(poll, 400);
// Throughput and ETA age even when nothing changes (every 5 s); a running shard's logs grow
// without a registry commit, so its page follows them every second.
let ticks = 0;
setInterval(() => {
  ticks++;
  if (!state.busy && (state.follow || ticks % 5 === 0)) route();
}, 1000);
