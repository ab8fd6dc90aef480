/* molexp web view: renders the JSON of /api/* (or, in a report, the JSON embedded
 * in the page) with DOM text nodes only.  Values are user data: nothing here
 * ever parses them as HTML (no innerHTML), and links are built only from
 * paths of this server.  See docs/ui.md. */
(function () {
  "use strict";

  var EMBEDDED = document.getElementById("molexp-data");
  var REPORT = EMBEDDED ? JSON.parse(EMBEDDED.textContent) : null;
  var STATUSES = ["pending", "queued", "running", "succeeded", "failed", "cancelled", "interrupted"];
  var ACTIVE = { queued: true, running: true };
  var COLORS = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7a8a", "#57606a"];
  var MIN_POLL = 2000;

  // --- DOM, text only --------------------------------------------------------

  function h(tag, props) {
    var el = document.createElement(tag);
    if (props) {
      Object.keys(props).forEach(function (key) {
        var value = props[key];
        if (value === null || value === undefined || value === false) return;
        if (key === "class") el.className = value;
        else if (key === "href") el.setAttribute("href", safeHref(value));
        else if (key === "text") el.textContent = String(value);
        else if (key.slice(0, 2) === "on") el.addEventListener(key.slice(2), value);
        else if (key === "value") el.value = value;
        else el.setAttribute(key, value === true ? "" : String(value));
      });
    }
    for (var i = 2; i < arguments.length; i++) add(el, arguments[i]);
    return el;
  }

  function add(el, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { add(el, c); }); return; }
    el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }

  function safeHref(value) {
    value = String(value);
    if (value.charAt(0) === "/" && value.charAt(1) !== "/") return value;
    if (value.charAt(0) === "#" || value.charAt(0) === "?") return value;
    return "#";
  }

  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

  function replace(el, child) { clear(el); add(el, child); return el; }

  // --- values ------------------------------------------------------------------

  function fmt(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "number") {
      if (Number.isInteger(value)) return String(value);
      return String(Number(value.toPrecision(6)));
    }
    if (typeof value === "boolean") return value ? "true" : "false";
    if (typeof value === "string") return value;
    return JSON.stringify(value);
  }

  function short(value, n) {
    var text = fmt(value);
    return text.length > n ? text.slice(0, n - 1) + "…" : text;
  }

  function num(n) { return typeof n === "number" ? n.toLocaleString("en-US") : fmt(n); }

  function seconds(value) {
    if (typeof value !== "number") return "";
    if (value < 60) return value.toFixed(value < 10 ? 2 : 1) + " s";
    if (value < 3600) return Math.floor(value / 60) + " min " + Math.round(value % 60) + " s";
    return Math.floor(value / 3600) + " h " + Math.round((value % 3600) / 60) + " min";
  }

  function when(stamp) {
    return typeof stamp === "string" ? stamp.slice(0, 19).replace("T", " ") : fmt(stamp);
  }

  function bytes(n) {
    if (typeof n !== "number") return "";
    if (n < 1024) return n + " B";
    if (n < 1048576) return (n / 1024).toFixed(1) + " KiB";
    if (n < 1073741824) return (n / 1048576).toFixed(1) + " MiB";
    return (n / 1073741824).toFixed(1) + " GiB";
  }

  function enc(text) { return encodeURIComponent(text); }

  function refPath(ref) { return ref.split("/").map(enc).join("/"); }

  function badge(status) { return h("span", { class: "badge s-" + status, text: status || "?" }); }

  function chips(tags) {
    return (tags || []).map(function (t) { return h("span", { class: "tag", text: t }); });
  }

  function runLink(ref, label) {
    if (REPORT) return h("span", { class: "mono", title: ref, text: label });
    return h("a", { class: "mono", href: "/r/" + refPath(ref), title: ref, text: label });
  }

  // Order of values, as molexp sorts them: numbers, then texts, then lists, then the rest.
  function rank(value) {
    if (typeof value === "number") return [0, value];
    if (typeof value === "boolean") return [0, value ? 1 : 0];
    if (typeof value === "string") return [1, value];
    if (Array.isArray(value)) return [2, JSON.stringify(value)];
    return [3, JSON.stringify(value)];
  }

  function compareValues(a, b) {
    var ra = rank(a), rb = rank(b);
    if (ra[0] !== rb[0]) return ra[0] - rb[0];
    return ra[1] < rb[1] ? -1 : ra[1] > rb[1] ? 1 : 0;
  }

  // --- talking to the server -------------------------------------------------------

  var cache = {};

  function api(path, params) {
    var query = new URLSearchParams();
    Object.keys(params || {}).forEach(function (key) {
      var value = params[key];
      (Array.isArray(value) ? value : [value]).forEach(function (v) {
        if (v !== null && v !== undefined && v !== "") query.append(key, v);
      });
    });
    var url = "/api/" + path + (query.toString() ? "?" + query.toString() : "");
    var known = cache[url];
    var headers = known ? { "If-None-Match": known.etag } : {};
    return fetch(url, { headers: headers, credentials: "same-origin" }).then(function (res) {
      if (res.status === 304 && known) return { data: known.data, changed: false };
      return res.json().then(function (data) {
        if (!res.ok) {
          var err = new Error(data && data.error ? data.error : res.status + " " + res.statusText);
          err.status = res.status;
          throw err;
        }
        var etag = res.headers.get("ETag");
        if (etag) cache[url] = { etag: etag, data: data };
        return { data: data, changed: true };
      });
    });
  }

  function post(path, body) {
    return fetch("/api/" + path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Molexp-Request": "1" },
      body: JSON.stringify(body),
    }).then(function (res) {
      return res.json().then(function (data) {
        if (!res.ok) throw new Error(data && data.error ? data.error : String(res.status));
        return data;
      });
    });
  }

  // Calls `step` now and again after each answer (at least MIN_POLL apart, longer
  // when answers are slow), while the page is visible: pages follow the record.
  function follow(step) {
    var timer = null;
    var stopped = false;
    function run() {
      timer = null;
      if (stopped) return;
      if (document.hidden) { timer = setTimeout(run, MIN_POLL); return; }
      var started = Date.now();
      Promise.resolve().then(step).then(function () {
        live(true);
      }, function (err) {
        live(false, err);
      }).then(function () {
        if (!stopped) timer = setTimeout(run, Math.max(MIN_POLL, 5 * (Date.now() - started)));
      });
    }
    run();
    return {
      now: function () { if (timer) { clearTimeout(timer); run(); } },
      stop: function () { stopped = true; if (timer) clearTimeout(timer); },
    };
  }

  function live(ok, err) {
    var el = document.getElementById("live");
    if (!el) return;
    var time = new Date().toTimeString().slice(0, 8);
    el.className = "live " + (ok ? "ok" : "down");
    el.textContent = ok ? "live · " + time : "not answering · " + time;
    el.title = ok ? "following the record" : String(err && err.message ? err.message : err);
  }

  function errorBox(err) {
    return h("p", { class: "error", role: "alert", text: err && err.message ? err.message : String(err) });
  }

  function problems(list) {
    if (!list || !list.length) return null;
    return h("div", { class: "problems", role: "status" },
      h("strong", { text: list.length + " record(s) could not be read" }), " (",
      h("code", { text: "molexp doctor" }), " lists them):",
      h("ul", null, list.slice(0, 20).map(function (p) { return h("li", { class: "mono", text: p }); })));
  }

  function crumbs(parts) {
    var nav = document.getElementById("crumbs");
    if (!nav) return;
    clear(nav);
    parts.forEach(function (part) {
      add(nav, h("span", { class: "sep", text: "/" }));
      add(nav, part[1] && !REPORT ? h("a", { href: part[1], text: part[0] }) : h("span", { text: part[0] }));
    });
  }

  function section(title, body, extra) {
    return h("section", { class: "card" }, h("h2", null, title, extra || null), body);
  }

  function kv(pairs) {
    var rows = pairs.filter(function (p) { return p[1] !== null && p[1] !== undefined && p[1] !== ""; });
    return h("table", { class: "kv" }, h("tbody", null, rows.map(function (p) {
      var value = p[1] instanceof Node ? p[1] : h("span", { class: "value", text: fmt(p[1]) });
      return h("tr", null, h("th", { text: p[0] }), h("td", null, value));
    })));
  }

  function flatten(data, prefix, out) {
    out = out || [];
    if (data && typeof data === "object" && !Array.isArray(data) && Object.keys(data).length) {
      Object.keys(data).forEach(function (key) {
        flatten(data[key], prefix ? prefix + "." + key : key, out);
      });
    } else if (prefix) {
      out.push([prefix, data]);
    }
    return out;
  }

  function valueTable(data, empty) {
    var pairs = flatten(data || {}, "");
    if (!pairs.length) return h("p", { class: "muted", text: empty });
    return kv(pairs);
  }

  function statusCounts(byStatus) {
    return h("span", { class: "counts" }, STATUSES.filter(function (s) { return byStatus && byStatus[s]; })
      .map(function (s) { return h("span", { class: "count s-" + s, title: s, text: num(byStatus[s]) + " " + s }); }));
  }

  // --- the runs table ---------------------------------------------------------------

  // A table of runs.  Served: filters, sort and pages are asked of the server
  // (the core's query grammar and order).  In a report: every row is in the
  // page, sorted and paged here.
  function RunsTable(ref, options) {
    options = options || {};
    var url = new URLSearchParams(location.search);
    var state = {
      status: url.getAll("status"),
      tag: url.getAll("tag"),
      where: url.get("where") || "",
      sort: url.get("sort") || "",
      offset: parseInt(url.get("offset") || "0", 10) || 0,
      limit: parseInt(url.get("limit") || "100", 10) || 100,
    };
    var root = h("div", { class: "runs" });
    var bar = h("div", { class: "toolbar" });
    var message = h("div", { class: "message" });
    var body = h("div", { class: "table-wrap" });
    add(root, [bar, message, body]);
    var last = null;
    var whereInput = h("input", {
      type: "search", class: "where", placeholder: "where: lr>=0.01; results.loss<0.2 (SPEC §15 conditions, ; between them)",
      "aria-label": "where conditions", value: state.where, spellcheck: "false",
    });
    whereInput.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter") { state.where = whereInput.value.trim(); state.offset = 0; changed(); }
    });

    function conditions() {
      return state.where.split(";").map(function (c) { return c.trim(); }).filter(Boolean);
    }

    function remember() {
      if (REPORT) return;
      var q = new URLSearchParams();
      state.status.forEach(function (s) { q.append("status", s); });
      state.tag.forEach(function (t) { q.append("tag", t); });
      if (state.where) q.set("where", state.where);
      if (state.sort) q.set("sort", state.sort);
      if (state.offset) q.set("offset", String(state.offset));
      if (state.limit !== 100) q.set("limit", String(state.limit));
      var text = q.toString();
      history.replaceState(null, "", location.pathname + (text ? "?" + text : ""));
    }

    var poller = null;
    function changed() {
      remember();
      if (REPORT) { draw(localPage()); return; }
      if (poller) poller.now();
    }

    function load() {
      return api("runs", {
        ref: ref, status: state.status, tag: state.tag, where: conditions(),
        sort: state.sort, offset: state.offset, limit: state.limit,
      }).then(function (answer) {
        replace(message, null);
        if (answer.changed || !last) draw(answer.data);
      }, function (err) {
        if (err.status === 400) { replace(message, errorBox(err)); return; }
        throw err;
      });
    }

    function localPage() {
      var all = REPORT.runs.rows;
      var counts = {};
      all.forEach(function (r) { counts[r.status] = (counts[r.status] || 0) + 1; });
      var rows = all.filter(function (r) {
        if (state.status.length && state.status.indexOf(r.status) < 0) return false;
        return state.tag.every(function (t) { return (r.tags || []).indexOf(t) >= 0; });
      });
      if (state.sort) {
        var desc = state.sort.charAt(0) === "-";
        var key = desc ? state.sort.slice(1) : state.sort;
        var present = rows.filter(function (r) { var v = cellValue(r, key); return v !== null && v !== undefined; });
        var absent = rows.filter(function (r) { var v = cellValue(r, key); return v === null || v === undefined; });
        present.sort(function (a, b) {
          var c = compareValues(cellValue(a, key), cellValue(b, key));
          return desc ? -c : c;
        });
        rows = present.concat(absent);
      }
      var data = Object.assign({}, REPORT.runs, {
        total: rows.length, counts: counts, offset: state.offset, limit: state.limit,
        rows: rows.slice(state.offset, state.offset + state.limit), sort: state.sort,
      });
      return data;
    }

    function cellValue(row, key) {
      if (key.indexOf(".") > 0 && row.values) return row.values[key];
      if (key === "run") return row.id;
      return row[key];
    }

    function sortBy(key) {
      state.sort = state.sort === key ? "-" + key : state.sort === "-" + key ? "" : key;
      state.offset = 0;
      changed();
    }

    function toggleStatus(status) {
      var i = state.status.indexOf(status);
      if (i >= 0) state.status.splice(i, 1); else state.status.push(status);
      state.offset = 0;
      changed();
    }

    function drawBar(data) {
      clear(bar);
      var total = Object.keys(data.counts).reduce(function (a, k) { return a + data.counts[k]; }, 0);
      add(bar, h("button", {
        class: "chip" + (state.status.length ? "" : " on"), type: "button",
        onclick: function () { state.status = []; state.offset = 0; changed(); },
      }, "all ", h("b", { text: num(total) })));
      STATUSES.forEach(function (s) {
        if (!data.counts[s] && state.status.indexOf(s) < 0) return;
        add(bar, h("button", {
          class: "chip s-" + s + (state.status.indexOf(s) >= 0 ? " on" : ""), type: "button",
          "data-status": s, onclick: function () { toggleStatus(s); },
        }, s + " ", h("b", { text: num(data.counts[s] || 0) })));
      });
      if ((data.tags && data.tags.length) || state.tag.length) {
        var select = h("select", { "aria-label": "tag", class: "tagfilter" },
          h("option", { value: "", text: "any tag" }),
          (data.tags || []).map(function (t) { return h("option", { value: t, text: "tag: " + t }); }));
        select.value = state.tag[0] || "";
        select.addEventListener("change", function () {
          state.tag = select.value ? [select.value] : [];
          state.offset = 0;
          changed();
        });
        add(bar, select);
      }
      if (!REPORT) add(bar, whereInput);
    }

    function header(key, label, title) {
      var mark = state.sort === key ? " ▲" : state.sort === "-" + key ? " ▼" : "";
      return h("th", { title: title || ("sort by " + key), "data-key": key, class: "sortable",
        onclick: function () { sortBy(key); } }, label + mark);
    }

    function draw(data) {
      last = data;
      drawBar(data);
      var wide = ref === "." || ref.indexOf("/") < 0;
      var cols = data.columns || [];
      var showProfile = data.rows.some(function (r) { return r.profile; });
      var showHost = data.rows.some(function (r) { return r.host; });
      var heads = [header("id", "run")];
      if (wide) heads.push(header("experiment", "experiment"));
      heads.push(header("status", "status"), header("replica", "replica"));
      if (showProfile) heads.push(header("profile", "profile"));
      cols.forEach(function (c) {
        var label = c.replace(/^(params|results|metrics)\./, "");
        heads.push(header(c, label, c));
      });
      heads.push(header("tags", "tags"), header("attempts", "attempts"), header("duration", "duration"));
      if (showHost) heads.push(header("host", "host"));
      heads.push(header("updated_at", "updated (UTC)"));
      var groups = h("tr", { class: "groups" });
      var spans = { lead: 3 + (wide ? 1 : 0) + (showProfile ? 1 : 0), params: 0, results: 0, metrics: 0 };
      cols.forEach(function (c) { spans[c.split(".")[0]] = (spans[c.split(".")[0]] || 0) + 1; });
      add(groups, h("th", { colspan: spans.lead }));
      ["params", "results", "metrics"].forEach(function (g) {
        if (spans[g]) add(groups, h("th", { colspan: spans[g], class: "group g-" + g, text: g }));
      });
      add(groups, h("th", { colspan: 4 + (showHost ? 1 : 0) }));
      var rows = data.rows.map(function (r) {
        var cells = [h("td", null, runLink(r.ref, r.id))];
        if (wide) cells.push(h("td", null, REPORT ? r.experiment : h("a", { href: "/e/" + refPath(r.experiment), text: r.experiment })));
        cells.push(h("td", { title: r.status_reason || null }, badge(r.status)),
          h("td", { class: "num", text: fmt(r.replica) }));
        if (showProfile) cells.push(h("td", { text: fmt(r.profile) }));
        cols.forEach(function (c) {
          var v = r.values ? r.values[c] : undefined;
          cells.push(h("td", { class: typeof v === "number" ? "num" : null, title: fmt(v), text: short(v, 40) }));
        });
        cells.push(h("td", null, chips(r.tags)), h("td", { class: "num", text: fmt(r.attempts) }),
          h("td", { class: "num", text: seconds(r.duration) }));
        if (showHost) cells.push(h("td", { text: fmt(r.host) }));
        cells.push(h("td", { class: "mono", text: when(r.updated_at) }));
        return h("tr", { "data-ref": r.ref, "data-status": r.status }, cells);
      });
      var constant = Object.keys(data.constant || {});
      var note = constant.length ? h("p", { class: "muted small" }, "same in every run: ",
        constant.map(function (k, i) {
          return [i ? ", " : "", h("code", { text: k.replace(/^params\./, "") + "=" + fmt(data.constant[k]) })];
        })) : null;
      var table = h("table", { class: "grid", "data-total": data.total },
        h("thead", null, cols.length ? groups : null, h("tr", null, heads)), h("tbody", null, rows));
      replace(body, [note, data.rows.length ? table : h("p", { class: "muted empty", text: "no runs match" }),
        pager(data), problems(data.problems)]);
      if (options.onData) options.onData(data);
    }

    function pager(data) {
      if (data.total <= data.rows.length && data.offset === 0) {
        return h("p", { class: "muted small pager", text: num(data.total) + " run" + (data.total === 1 ? "" : "s") });
      }
      var first = data.total ? data.offset + 1 : 0;
      var lastRow = Math.min(data.offset + data.limit, data.total);
      var size = h("select", { "aria-label": "rows per page" }, [100, 500, 1000].map(function (n) {
        return h("option", { value: n, text: n + " per page" });
      }));
      size.value = String(state.limit);
      size.addEventListener("change", function () { state.limit = parseInt(size.value, 10); state.offset = 0; changed(); });
      return h("div", { class: "pager" },
        h("button", { type: "button", disabled: data.offset <= 0, class: "prev",
          onclick: function () { state.offset = Math.max(0, state.offset - state.limit); changed(); } }, "‹ previous"),
        h("span", { text: " " + num(first) + "–" + num(lastRow) + " of " + num(data.total) + " " }),
        h("button", { type: "button", disabled: lastRow >= data.total, class: "next",
          onclick: function () { state.offset = state.offset + state.limit; changed(); } }, "next ›"),
        " ", size);
    }

    if (REPORT) {
      draw(localPage());
    } else {
      poller = follow(load);
    }
    return root;
  }

  // --- plots ---------------------------------------------------------------------

  function plotWidth(el) {
    return Math.max(320, Math.min(1100, (el.clientWidth || document.body.clientWidth - 80)));
  }

  // Mean ± standard deviation of each point against a param, replicas as dots.
  function aggregatePlot(exp, yKey, xKey, logX) {
    var points = exp.aggregate.points || [];
    var byPoint = {};
    points.forEach(function (p) { byPoint[p.key] = p; });
    var others = exp.point_keys.filter(function (k) { return k !== xKey; });
    // One series per combination of the other point keys, unless those follow
    // from x (each x value has one combination): then one series.
    var combos = {};
    var determined = points.every(function (p) {
      var x = JSON.stringify(xKey ? p.point[xKey] : null);
      var rest = JSON.stringify(others.map(function (k) { return p.point[k]; }));
      if (x in combos) return combos[x] === rest;
      combos[x] = rest;
      return true;
    });
    if (determined) others = [];
    var groups = {};
    var order = [];
    var numeric = true;
    var xsSeen = {};
    points.forEach(function (p) {
      var stats = p.values[yKey];
      if (!stats || typeof stats.mean !== "number") return;
      var label = others.map(function (k) { return k.replace(/^(params|config)\./, "") + "=" + fmt(p.point[k]); }).join(", ");
      if (!(label in groups)) { groups[label] = []; order.push(label); }
      var x = xKey ? p.point[xKey] : null;
      if (typeof x !== "number") numeric = false;
      xsSeen[JSON.stringify(x === undefined ? null : x)] = x === undefined ? null : x;
      groups[label].push({ x: x, stats: stats, key: p.key });
    });
    if (!order.length) return null;
    if (logX && numeric) {
      numeric = Object.keys(xsSeen).every(function (k) { return xsSeen[k] > 0; });
    }
    var xs = Object.keys(xsSeen).map(function (k) { return xsSeen[k]; });
    xs.sort(compareValues);
    var categories = numeric ? null : xs.map(function (x) { return x === null ? "(none)" : fmt(x); });
    function xPos(x) { return numeric ? x : xs.findIndex(function (v) { return JSON.stringify(v) === JSON.stringify(x); }); }
    var xData = numeric ? xs : xs.map(function (_, i) { return i; });
    var lo = Infinity, hi = -Infinity;
    var replicas = {};
    exp.runs.forEach(function (r) {
      var y = r.y[yKey];
      if (typeof y !== "number" || !byPoint[r.point_key]) return;
      (replicas[r.point_key] = replicas[r.point_key] || []).push(y);
      lo = Math.min(lo, y); hi = Math.max(hi, y);
    });
    var data = [xData];
    order.forEach(function (label) {
      var ys = xData.map(function () { return null; });
      groups[label].forEach(function (g) {
        var i = xData.indexOf(xPos(g.x));
        ys[i] = g.stats.mean;
        var sd = typeof g.stats.std === "number" ? g.stats.std : 0;
        lo = Math.min(lo, g.stats.mean - sd); hi = Math.max(hi, g.stats.mean + sd);
      });
      data.push(ys);
    });
    if (lo === hi) { lo -= Math.abs(lo) * 0.1 || 1; hi += Math.abs(hi) * 0.1 || 1; }
    var pad = (hi - lo) * 0.08;
    var series = [{ label: xKey ? xKey.replace(/^(params|config)\./, "") : "point" }];
    order.forEach(function (label, i) {
      var line = {
        label: label || yKey.replace(/^(results|metrics)\./, "") + " (mean)", stroke: COLORS[i % COLORS.length], width: 1.5,
        spanGaps: true, points: { show: true, size: 7, fill: COLORS[i % COLORS.length] },
      };
      if (!numeric) line.paths = function () { return null; };  // categories: no line between them
      series.push(line);
    });
    function drawExtras(u) {
      var ctx = u.ctx;
      ctx.save();
      ctx.beginPath();
      ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
      ctx.clip();
      var ratio = window.devicePixelRatio || 1;
      order.forEach(function (label, i) {
        if (!u.series[i + 1].show) return;
        var color = COLORS[i % COLORS.length];
        groups[label].forEach(function (g) {
          var px = u.valToPos(xPos(g.x), "x", true);
          var sd = typeof g.stats.std === "number" ? g.stats.std : 0;
          ctx.strokeStyle = color;
          ctx.lineWidth = 1.5 * ratio;
          if (sd > 0) {
            var top = u.valToPos(g.stats.mean + sd, "y", true);
            var bottom = u.valToPos(g.stats.mean - sd, "y", true);
            var cap = 5 * ratio;
            ctx.beginPath();
            ctx.moveTo(px, top); ctx.lineTo(px, bottom);
            ctx.moveTo(px - cap, top); ctx.lineTo(px + cap, top);
            ctx.moveTo(px - cap, bottom); ctx.lineTo(px + cap, bottom);
            ctx.stroke();
          }
          ctx.fillStyle = color;
          ctx.globalAlpha = 0.45;
          (replicas[g.key] || []).forEach(function (y, j) {
            var jitter = ((j % 7) - 3) * 1.5 * ratio;
            ctx.beginPath();
            ctx.arc(px + 9 * ratio + jitter, u.valToPos(y, "y", true), 2.6 * ratio, 0, 2 * Math.PI);
            ctx.fill();
          });
          ctx.globalAlpha = 1;
        });
      });
      ctx.restore();
    }
    var xRange = numeric ? function (u, min, max) {
      if (logX) return [min / 1.5, max * 1.5];
      var span = max - min || Math.abs(max) || 1;
      return [min - span * 0.08, max + span * 0.08];
    } : function () { return [-0.6, xs.length - 0.4]; };
    var opts = {
      width: 800, height: 360, class: "plot",
      scales: { x: { time: false, distr: logX && numeric ? 3 : 1, range: xRange }, y: { range: function () { return [lo - pad, hi + pad]; } } },
      axes: [
        { label: series[0].label, values: categories ? function (u, splits) {
          return splits.map(function (s) { return Number.isInteger(s) && categories[s] !== undefined ? categories[s] : ""; });
        } : undefined, splits: categories ? function () { return categories.map(function (_, i) { return i; }); } : undefined },
        { label: yKey.replace(/^(results|metrics)\./, ""), size: 70 },
      ],
      series: series,
      legend: { show: true, live: false },
      hooks: { draw: [drawExtras] },
    };
    return { opts: opts, data: data };
  }

  function mountPlot(holder, spec) {
    clear(holder);
    if (!spec) { add(holder, h("p", { class: "muted", text: "nothing to plot: no numeric values for this choice" })); return null; }
    if (typeof uPlot === "undefined") { add(holder, errorBox("the plotting library did not load")); return null; }
    spec.opts.width = plotWidth(holder);
    return new uPlot(spec.opts, spec.data, holder);
  }

  function linePlot(name, series, width) {
    var steps = series.step || [];
    var values = series.value || [];
    var xs = [], ys = [];
    for (var i = 0; i < steps.length; i++) {
      if (typeof steps[i] === "number") { xs.push(steps[i]); ys.push(typeof values[i] === "number" ? values[i] : null); }
    }
    return {
      opts: {
        width: width, height: 200, class: "plot",
        scales: { x: { time: false } },
        axes: [{ label: "step" }, { size: 60 }],
        series: [{ label: "step" }, { label: name, stroke: COLORS[0], width: 1.5, spanGaps: true, points: { show: xs.length < 60 } }],
        legend: { show: true },
      },
      data: [xs, ys],
    };
  }

  // --- pages -----------------------------------------------------------------------

  function workspacePage(main) {
    var head = h("div");
    var projects = h("div");
    add(main, [head, projects]);
    add(main, section("Runs", RunsTable(".")));
    crumbs([]);
    follow(function () {
      return api("workspace").then(function (answer) {
        if (!answer.changed) return;
        var ws = answer.data;
        document.title = ws.name + " · molexp";
        replace(head, h("div", { class: "head" },
          h("h1", null, ws.name, " ", h("span", { class: "muted small mono", text: ws.root })),
          h("p", null, num(ws.runs) + " runs ", statusCounts(ws.by_status))));
        replace(projects, [problems(ws.problems), ws.projects.length ? ws.projects.map(projectCard)
          : h("p", { class: "muted", text: "No projects yet: molexp project create NAME" })]);
      });
    });
  }

  function experimentsTable(experiments) {
    if (!experiments.length) return h("p", { class: "muted", text: "no experiments" });
    return h("table", { class: "grid experiments" },
      h("thead", null, h("tr", null, ["experiment", "runs", "status", "replicas", "description"].map(function (c) { return h("th", { text: c }); }))),
      h("tbody", null, experiments.map(function (e) {
        return h("tr", { "data-ref": e.ref },
          h("td", null, h("a", { href: "/e/" + refPath(e.ref), text: e.name })),
          h("td", { class: "num", text: num(e.runs) }),
          h("td", null, statusCounts(e.by_status)),
          h("td", { class: "num", text: fmt(e.replicas) }),
          h("td", { text: e.description }));
      })));
  }

  function projectCard(p) {
    return section([h("a", { href: "/p/" + enc(p.name), text: p.name }), " ", chips(p.tags)],
      [p.description ? h("p", { text: p.description }) : null, experimentsTable(p.experiments)]);
  }

  function projectPage(main, name) {
    var head = h("div");
    add(main, head);
    add(main, section("Runs", RunsTable(name)));
    crumbs([[name, "/p/" + enc(name)]]);
    document.title = name + " · molexp";
    follow(function () {
      return api("workspace", { project: name }).then(function (answer) {
        if (!answer.changed) return;
        var p = answer.data.projects.filter(function (x) { return x.name === name; })[0];
        if (!p) { replace(head, errorBox("no project named " + name)); return; }
        replace(head, [h("h1", null, p.name, " ", chips(p.tags)), p.description ? h("p", { text: p.description }) : null,
          section("Experiments", experimentsTable(p.experiments)), problems(answer.data.problems)]);
      });
    });
  }

  function experimentPage(main, ref) {
    var parts = ref.split("/");
    crumbs([[parts[0], "/p/" + enc(parts[0])], [parts[1], "/e/" + refPath(ref)]]);
    document.title = ref + " · molexp";
    var head = h("div");
    var controls = h("div", { class: "controls" });
    var holder = h("div", { class: "plot-holder", id: "plot" });
    var aggregate = h("div", { class: "table-wrap" });
    add(main, [head, section("Plot", [controls, holder]), section("Replicas aggregated", aggregate)]);
    // The table first: the aggregate of a large experiment takes the server longer.
    var tableDrawn = null;
    var tableReady = new Promise(function (resolve) { tableDrawn = resolve; });
    add(main, section("Runs", RunsTable(ref, { onData: function () { tableDrawn(); } })));
    var choice = { y: null, x: null, log: false };
    var plot = null;
    var current = null;

    function redraw() {
      if (!current) return;
      var spec = choice.y ? aggregatePlot(current, choice.y, choice.x, choice.log) : null;
      if (plot) { plot.destroy(); plot = null; }
      plot = mountPlot(holder, spec);
    }

    function draw(exp) {
      current = exp;
      var d = exp.definition;
      replace(head, [h("h1", null, ref, " ", chips(d.tags)), d.description ? h("p", { text: d.description }) : null,
        h("div", { class: "cols" },
          section("Definition", kv([["command", d.command ? h("code", { text: d.command }) : null], ["replicas", d.replicas],
            ["seeds", d.seeds], ["workdir", d.workdir], ["workflow", d.workflow_source],
            ["git", d.git && d.git.commit ? String(d.git.commit).slice(0, 10) + (d.git.dirty ? " (dirty)" : "") : null],
            ["created", when(d.created_at)]])),
          section("Params", valueTable(d.params, "no params")),
          section("Runs", h("div", null, h("p", null, num(d.runs.total) + " runs"), statusCounts(d.runs.by_status)))),
        notesList(d.notes), problems(exp.problems)]);
      var ys = exp.aggregate.numeric || [];
      var xs = exp.point_keys;
      if (!choice.y || ys.indexOf(choice.y) < 0) choice.y = ys.filter(function (k) { return k.indexOf("results.") === 0; })[0] || ys[0] || null;
      if (choice.x === null || (xs.indexOf(choice.x) < 0 && choice.x !== "")) {
        choice.x = xs.filter(function (k) { return k.indexOf("params.") === 0; })[0] ||
          (xs.indexOf("profile") >= 0 ? "profile" : xs[0]) || "";
      }
      var ySelect = h("select", { id: "plot-y", "aria-label": "value to plot" }, ys.map(function (k) { return h("option", { value: k, text: k }); }));
      ySelect.value = choice.y || "";
      ySelect.addEventListener("change", function () { choice.y = ySelect.value; redraw(); });
      var xSelect = h("select", { id: "plot-x", "aria-label": "param on the x axis" },
        xs.length ? xs.map(function (k) { return h("option", { value: k, text: k }); }) : h("option", { value: "", text: "(one point)" }));
      xSelect.value = choice.x || "";
      xSelect.addEventListener("change", function () { choice.x = xSelect.value; redraw(); });
      var log = h("input", { type: "checkbox", id: "plot-log" });
      log.checked = choice.log;
      log.addEventListener("change", function () { choice.log = log.checked; redraw(); });
      replace(controls, [h("label", null, "plot ", ySelect), h("label", null, " against ", xSelect),
        h("label", { class: "small" }, log, " log x"),
        h("span", { class: "muted small", text: "  mean ± standard deviation over replicas; dots: each replica" })]);
      redraw();
      replace(aggregate, aggregateTable(exp));
    }

    window.addEventListener("resize", function () { if (plot) plot.setSize({ width: plotWidth(holder), height: 360 }); });
    if (REPORT) { draw(REPORT.experiment); return; }
    var started = false;
    function start() {
      if (started) return;
      started = true;
      follow(function () {
        return api("experiment", { ref: ref }).then(function (answer) {
          if (answer.changed) draw(answer.data);
        });
      });
    }
    tableReady.then(start);
    setTimeout(start, 3000);  // (a table that cannot load does not hold the plot back)
  }

  function aggregateTable(exp) {
    var agg = exp.aggregate;
    var points = agg.points || [];
    if (!points.length) return h("p", { class: "muted", text: "no runs yet" });
    var keys = exp.point_keys;
    var numeric = agg.numeric || [];
    var other = agg.other || [];
    return h("table", { class: "grid aggregate" },
      h("thead", null, h("tr", null, keys.map(function (k) { return h("th", { text: k.replace(/^(params|config)\./, "") }); }),
        h("th", { text: "n" }), numeric.map(function (k) { return h("th", { text: k }); }),
        other.map(function (k) { return h("th", { text: k }); }))),
      h("tbody", null, points.map(function (p) {
        return h("tr", null, keys.map(function (k) { return h("td", { text: fmt(p.point[k]) }); }),
          h("td", { class: "num", text: fmt(p.n) }),
          numeric.map(function (k) {
            var s = p.values[k];
            if (!s || typeof s.mean !== "number") return h("td");
            var text = fmt(Number(s.mean.toPrecision(5))) + (typeof s.std === "number" ? " ± " + fmt(Number(s.std.toPrecision(2))) : "");
            return h("td", { class: "num", title: "min " + fmt(s.min) + ", max " + fmt(s.max) + ", n " + fmt(s.n), text: text });
          }),
          other.map(function (k) {
            var s = p.values[k];
            return h("td", { text: s ? (s.varies ? "(varies)" : fmt(s.value)) : "" });
          }));
      })));
  }

  function notesList(notes) {
    if (!notes || !notes.length) return null;
    return h("ul", { class: "notes" }, notes.map(function (n) {
      return h("li", null, h("span", { class: "muted mono small", text: when(n.time) + " " }), h("span", { class: "note-text", text: n.text }));
    }));
  }

  // --- the run page ------------------------------------------------------------------

  function runPage(main, ref) {
    var head = h("div");
    var body = h("div");
    var logs = h("div");
    var metrics = h("div");
    var rest = h("div");
    add(main, [head, body, metrics, logs, rest]);
    var logView = null;
    var metricView = null;
    var lastRecord = null;
    var poll = follow(function () {
      return api("run", { ref: ref }).then(function (answer) {
        if (!answer.changed) return;
        var r = answer.data;
        lastRecord = r;
        crumbs([[r.project, "/p/" + enc(r.project)], [r.experiment, "/e/" + refPath(r.project + "/" + r.experiment)],
          [r.id, "/r/" + refPath(r.ref)]]);
        document.title = r.id + " · " + r.project + "/" + r.experiment + " · molexp";
        drawHead(r);
        drawBody(r);
        var n = lastAttempt(r);
        if (!logView) { logView = LogView(r.ref); replace(logs, logView.el); }
        logView.update(r, n);
        if (!metricView) { metricView = MetricsView(r.ref); replace(metrics, metricView.el); }
        metricView.update(r, n);
      });
    });

    function lastAttempt(r) {
      var attempts = r.attempts || [];
      return attempts.length ? attempts[attempts.length - 1].n : null;
    }

    function drawHead(r) {
      var last = (r.attempts || [])[(r.attempts || []).length - 1] || {};
      var cause = [r.status_reason, last.cause ? "cause: " + last.cause : null, last.error].filter(Boolean);
      replace(head, h("div", { class: "head" },
        h("h1", null, h("span", { class: "mono", text: r.id }), " ", badge(r.status)),
        cause.length ? h("p", { class: "cause", text: cause.join(" · ") }) : null,
        h("p", { class: "muted" }, r.project + "/" + r.experiment, " · replica " + fmt(r.replica), " · seed " + fmt(r.seed),
          r.profile ? " · profile " + r.profile : "", " · " + (r.identity || "") + " id"),
        curation(r)));
    }

    function curation(r) {
      var tags = h("div", { class: "tags-edit" }, (r.tags || []).map(function (t) {
        return h("span", { class: "tag" }, t, h("button", { type: "button", class: "untag", title: "remove tag " + t, "aria-label": "remove tag " + t,
          onclick: function () { write("tag", { ref: r.ref, ops: ["-" + t] }); } }, "×"));
      }));
      var tagInput = h("input", { type: "text", id: "tag-input", placeholder: "new tag", "aria-label": "new tag", size: 14 });
      var addTag = h("button", { type: "button", id: "tag-add", onclick: function () {
        var t = tagInput.value.trim();
        if (t) write("tag", { ref: r.ref, ops: ["+" + t] });
      } }, "add tag");
      tagInput.addEventListener("keydown", function (ev) { if (ev.key === "Enter") addTag.click(); });
      var noteInput = h("textarea", { id: "note-input", rows: 2, placeholder: "a note about this run", "aria-label": "note" });
      var addNote = h("button", { type: "button", id: "note-add", onclick: function () {
        var t = noteInput.value;
        if (t.trim()) write("note", { ref: r.ref, text: t });
      } }, "add note");
      var status = h("span", { class: "write-status", role: "status" });
      function write(kind, payload) {
        status.className = "write-status";
        status.textContent = "saving…";
        post(kind, payload).then(function () {
          status.textContent = "saved";
          poll.now();
        }, function (err) {
          status.className = "write-status error";
          status.textContent = err.message;
        });
      }
      if (REPORT) return null;
      return h("div", { class: "curation" }, h("div", { class: "row" }, tags, tagInput, addTag),
        notesList(r.notes), h("div", { class: "row" }, noteInput, addNote), status);
    }

    function drawBody(r) {
      var attempts = r.attempts || [];
      var files = r.files || { artifacts: [], attempts: {} };
      var last = attempts[attempts.length - 1] || {};
      var attemptTable = attempts.length ? h("table", { class: "grid attempts" },
        h("thead", null, h("tr", null, ["#", "status", "exit", "cause", "started (UTC)", "duration", "host", "executor", "job", "git", "files"].map(function (c) { return h("th", { text: c }); }))),
        h("tbody", null, attempts.slice().reverse().map(function (a) {
          var f = files.attempts[String(a.n)] || {};
          var links = ["stdout.log", "stderr.log", "git.patch", "metrics.jsonl"].filter(function (k) { return f[k]; }).map(function (k) {
            return [h("a", { href: "/files/" + refPath(f[k].url), text: k.replace(".log", "").replace(".jsonl", ""), title: bytes(f[k].size) }), " "];
          });
          return h("tr", { "data-attempt": a.n }, h("td", { class: "num", text: fmt(a.n) }), h("td", null, badge(a.status)),
            h("td", { class: "num", text: fmt(a.exit_code) }), h("td", { text: fmt(a.cause), title: fmt(a.error) }),
            h("td", { class: "mono", text: when(a.started_at) }), h("td", { class: "num", text: seconds(a.duration) }),
            h("td", { text: fmt(a.host) }), h("td", { text: fmt(a.executor) }), h("td", { class: "mono", text: fmt(a.scheduler_job_id) }),
            h("td", { class: "mono", text: a.git && a.git.commit ? String(a.git.commit).slice(0, 10) + (a.git.dirty ? "+dirty" : "") : "" }),
            h("td", null, links));
        }))) : h("p", { class: "muted", text: "no attempt yet (pending)" });
      var artifacts = files.artifacts.length ? fileList(files.artifacts) : h("p", { class: "muted", text: "no artifacts" });
      var older = Object.keys(files.attempts).filter(function (n) { return (files.attempts[n].artifacts || []).length; }).map(function (n) {
        return [h("h3", { text: "kept from attempt " + n }), fileList(files.attempts[n].artifacts)];
      });
      var inputs = (r.inputs || []).length ? h("table", { class: "grid" },
        h("thead", null, h("tr", null, ["asset", "scope", "content hash", "producer"].map(function (c) { return h("th", { text: c }); }))),
        h("tbody", null, r.inputs.map(function (i) {
          var changed = i.current_hash && i.current_hash !== i.content_hash;
          return h("tr", null,
            h("td", null, i.asset_ref ? h("a", { href: "/a/" + enc(i.asset_ref), text: i.name }) : fmt(i.name), i.asset_missing ? h("span", { class: "error small", text: " (missing)" }) : null),
            h("td", { text: fmt(i.scope) }),
            h("td", { class: "mono small", text: short(i.content_hash, 22) + (changed ? " (asset changed since)" : "") }),
            h("td", null, i.producer ? h("a", { class: "mono", href: "/r/" + enc(i.producer), text: i.producer }) : ""));
        }))) : h("p", { class: "muted", text: "no inputs recorded" });
      var git = last.git || null;
      var gitBox = git && git.commit ? kv([["commit", h("code", { text: git.commit })], ["branch", git.branch], ["dirty", git.dirty],
        ["root", git.root], ["patch", (files.attempts[String(last.n)] || {})["git.patch"] ?
          h("a", { href: "/files/" + refPath(files.attempts[String(last.n)]["git.patch"].url), text: "git.patch" }) : null]])
        : h("p", { class: "muted", text: "not a git repository (or no attempt yet)" });
      var env = last.env ? envBox(last.env, (files.attempts[String(last.n)] || {}).packages) : null;
      replace(body, [
        section("Attempts", attemptTable),
        h("div", { class: "cols" }, section("Params", valueTable(r.params, "no params")), section("Results", valueTable(r.results, "no results yet")),
          section("Last metrics", valueTable(r.metrics, "no metrics")))]);
      replace(rest, [
        section("Config", valueTable(r.config, "no config"), r.config_hash ? h("span", { class: "muted small mono", text: "  " + r.config_hash }) : null),
        section("Artifacts", [artifacts, older]),
        section("Inputs", inputs),
        h("div", { class: "cols" }, section("Git", gitBox), section("Environment", [kv([["host", last.host], ["pid", last.pid], ["cwd", last.cwd],
          ["command", last.argv ? h("code", { text: (last.argv || []).join(" ") }) : null]]), env])),
        section("Record", kv([["run dir", r.run_dir], ["created", when(r.created_at)], ["updated", when(r.updated_at)]])),
      ]);
    }

    function fileList(list) {
      return h("ul", { class: "files" }, list.map(function (f) {
        return h("li", null, h("a", { href: "/files/" + refPath(f.url), text: f.name }), " ",
          h("span", { class: "muted small", text: bytes(f.size) }), " ",
          h("a", { class: "small", href: "/files/" + refPath(f.url) + "?download=1", text: "download" }));
      }));
    }

    function envBox(env, packages) {
      var pairs = flatten(env, "").filter(function (p) { return p[0] !== "packages" && p[0] !== "package_count"; });
      if (env.package_count !== null && env.package_count !== undefined) {
        pairs.push(["packages", packages ? h("a", { href: "/files/" + refPath(packages.url), text: env.package_count + " installed" })
          : fmt(env.package_count) + " installed"]);
      }
      return kv(pairs);
    }
    return lastRecord;
  }

  // stdout/stderr of an attempt, followed while the run is active.
  function LogView(ref) {
    var el = h("section", { class: "card logs" });
    var state = { attempt: null, stream: "stdout", offset: -1, text: "", timer: null, active: false, chosen: false };
    var tabs = h("div", { class: "tabs" });
    var pre = h("pre", { class: "log", id: "log", tabindex: "0" });
    var info = h("span", { class: "muted small" });
    add(el, [h("h2", null, "Logs ", info), tabs, pre]);
    var record = null;

    function drawTabs() {
      clear(tabs);
      ["stdout", "stderr"].forEach(function (s) {
        add(tabs, h("button", { type: "button", class: "tab" + (state.stream === s ? " on" : ""), "data-stream": s,
          onclick: function () { state.stream = s; reset(); } }, s));
      });
      var attempts = (record && record.attempts) || [];
      if (attempts.length > 1) {
        var select = h("select", { "aria-label": "attempt" }, attempts.map(function (a) { return h("option", { value: a.n, text: "attempt " + a.n }); }));
        select.value = String(state.attempt);
        select.addEventListener("change", function () { state.attempt = parseInt(select.value, 10); state.chosen = true; reset(); });
        add(tabs, select);
      }
    }

    function reset() { state.offset = -1; state.text = ""; pre.textContent = ""; drawTabs(); fetchMore(); }

    function fetchMore() {
      if (state.attempt === null) { pre.textContent = "(no attempt yet)"; return Promise.resolve(); }
      var want = { stream: state.stream, attempt: state.attempt };
      return api("log", { ref: ref, stream: state.stream, attempt: state.attempt, offset: state.offset }).then(function (answer) {
        if (want.stream !== state.stream || want.attempt !== state.attempt) return;
        var d = answer.data;
        var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
        if (state.offset < 0 && d.start > 0) state.text = "… (earlier output: " + bytes(d.start) + ")\n";
        state.text += d.text;
        if (state.text.length > 2000000) state.text = "…\n" + state.text.slice(-1500000);
        state.offset = d.offset;
        pre.textContent = state.text || (d.exists ? "(empty)" : "(no " + state.stream + " for this attempt)");
        info.textContent = d.exists ? "attempt " + d.attempt + ", " + bytes(d.size) + (state.active ? ", following" : "") : "";
        if (atEnd) pre.scrollTop = pre.scrollHeight;
        if (d.offset < d.size) return fetchMore();
      });
    }

    function tick() {
      state.timer = null;
      fetchMore().then(schedule, schedule);
    }

    function schedule() {
      if (state.active && !state.timer) state.timer = setTimeout(tick, MIN_POLL);
    }

    return {
      el: el,
      update: function (r, latest) {
        record = r;
        var wasActive = state.active;
        state.active = !!ACTIVE[r.status];
        if (!state.chosen && latest !== state.attempt) { state.attempt = latest; reset(); }
        else if (!wasActive || !state.active) fetchMore();
        drawTabs();
        schedule();
      },
    };
  }

  // The metric series of an attempt, one small chart each.
  function MetricsView(ref) {
    var el = h("section", { class: "card metrics" }, h("h2", { text: "Metrics" }));
    var holder = h("div", { class: "metric-plots" });
    add(el, holder);
    var plots = [];
    var attempt = null;
    return {
      el: el,
      update: function (r, latest) {
        if (latest === null) { replace(holder, h("p", { class: "muted", text: "no attempt yet" })); return; }
        if (latest !== attempt) { attempt = latest; }
        api("metrics", { ref: ref, attempt: attempt }).then(function (answer) {
          if (!answer.changed && plots.length) return;
          plots.forEach(function (p) { p.destroy(); });
          plots = [];
          var series = answer.data.series || {};
          var names = Object.keys(series);
          if (!names.length) { replace(holder, h("p", { class: "muted", text: "no metrics logged (MOLEXP_METRICS_FILE)" })); return; }
          clear(holder);
          names.slice(0, 24).forEach(function (name) {
            var box = h("div", { class: "metric" });
            add(holder, box);
            var spec = linePlot(name, series[name], Math.max(300, Math.min(540, (holder.clientWidth || 900) / 2 - 20)));
            if (typeof uPlot !== "undefined") plots.push(new uPlot(spec.opts, spec.data, box));
          });
        }, function () {});
      },
    };
  }

  function assetPage(main, ref) {
    crumbs([["asset " + ref, null]]);
    document.title = ref + " · molexp";
    var box = h("div");
    add(main, box);
    follow(function () {
      return api("asset", { ref: ref }).then(function (answer) {
        if (!answer.changed) return;
        var a = answer.data;
        replace(box, [h("h1", null, a.name, " ", h("span", { class: "muted small", text: "asset in " + (a.scope === "." ? "the workspace" : a.scope) })),
          section("Record", kv([["kind", a.kind], ["mode", a.mode], ["size", bytes(a.size)], ["content hash", h("code", { text: a.content_hash })],
            ["filename", a.filename], ["description", a.description], ["created", when(a.created_at)],
            ["producer", a.producer ? h("a", { class: "mono", href: "/r/" + enc(a.producer), text: a.producer }) : null],
            ["path", a.path], ["file", a.url ? h("a", { href: "/files/" + refPath(a.url) + "?download=1", text: "download" }) : null]])),
          section("Used by", (a.used_by || []).length ? h("ul", null, a.used_by.map(function (ref) { return h("li", null, runLink(ref, ref)); }))
            : h("p", { class: "muted", text: "no run recorded it as an input" }))]);
      });
    });
  }

  function route() {
    var main = document.getElementById("main");
    clear(main);
    if (REPORT) {
      var liveEl = document.getElementById("live");
      if (liveEl) liveEl.textContent = "report · " + when(REPORT.generated_at) + " UTC · molexp " + REPORT.version;
      experimentPage(main, REPORT.experiment.ref);
      return;
    }
    var path = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
    try {
      if (!path.length) workspacePage(main);
      else if (path[0] === "p" && path.length === 2) projectPage(main, path[1]);
      else if (path[0] === "e" && path.length === 3) experimentPage(main, path[1] + "/" + path[2]);
      else if (path[0] === "r" && path.length >= 2 && path.length <= 4) runPage(main, path.slice(1).join("/"));
      else if (path[0] === "a" && path.length >= 2) assetPage(main, path.slice(1).join("/"));
      else add(main, errorBox("no such page"));
    } catch (err) {
      add(main, errorBox(err));
    }
  }

  window.molexp = { h: h, fmt: fmt };
  route();
})();
