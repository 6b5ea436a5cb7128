// MAIP Events console: plain JavaScript, no dependencies, no build step. It talks only to this origin's API
// with the credential typed at sign-in, which lives in sessionStorage (never in the URL or localStorage).
"use strict";

(() => {
  const AUTH_KEY = "maip-console-auth";
  const API = "/v1/observability";
  const PAGE_SIZE = 50;
  const TAIL_EVERY_MS = 1000; // new events show within ~1 s (the issue asks for 3 s)
  const TAIL_LOOKBACK_MS = 2000; // re-ask a little before the newest event seen: late writers, equal timestamps
  const VIEWS = ["events", "webhooks", "metrics"];
  const SVG_NS = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------------------------------------- credential
  function loadAuth() {
    try {
      const auth = JSON.parse(sessionStorage.getItem(AUTH_KEY) || "null");
      return auth && auth.tenant && auth.secret ? auth : null;
    } catch (_) {
      return null;
    }
  }

  let auth = loadAuth();

  function authHeaders() {
    const headers = { "X-Tenant-ID": auth.tenant };
    if (auth.kind === "jwt") headers.Authorization = `Bearer ${auth.secret}`;
    else headers["X-API-Key"] = auth.secret;
    return headers;
  }

  // ------------------------------------------------------------------------------------------------- the API
  class ApiError extends Error {
    constructor(status, document, text) {
      const error = (document && document.error) || {};
      super(error.message || text || `HTTP ${status}`);
      this.status = status;
      this.code = error.code || "error";
      this.details = Array.isArray(error.details) ? error.details : [];
      this.requestId = document && document.request_id;
    }
  }

  async function api(method, path, params, body) {
    const url = new URL(path, window.location.origin);
    for (const [name, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
    }
    const init = { method, headers: authHeaders(), cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (err) {
      throw new ApiError(0, null, `The API did not answer (${err.message}).`);
    }
    const text = await response.text();
    let document = null;
    try {
      document = text ? JSON.parse(text) : null;
    } catch (_) {
      document = null;
    }
    if (!response.ok) throw new ApiError(response.status, document, text);
    return document;
  }

  // ------------------------------------------------------------------------------------------------- helpers
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name === "class") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    for (const child of children) node.append(child);
    return node;
  }

  function showError(err, { signOutOn401 = true } = {}) {
    const box = $("alert");
    box.replaceChildren();
    const status = err.status ? `${err.status} ${err.code}` : "Error";
    box.append(el("strong", { text: `${status}: ` }), document.createTextNode(err.message));
    if (err.details && err.details.length) {
      const list = el("ul");
      for (const d of err.details) list.append(el("li", { text: [d.field, d.issue].filter(Boolean).join(": ") }));
      box.append(list);
    }
    box.append(el("button", { type: "button", class: "dismiss", text: "Dismiss", onclick: clearError }));
    box.hidden = false;
    if (err.status === 401 && signOutOn401) signOut("Your credential was refused; sign in again.");
  }

  function clearError() {
    $("alert").hidden = true;
    $("alert").replaceChildren();
  }

  async function copyText(text) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (_) {
      // No clipboard permission (e.g. a plain-http origin): copy through a selection instead.
      const area = el("textarea", { class: "offscreen", readonly: true });
      area.value = text;
      document.body.append(area);
      area.select();
      const done = document.execCommand("copy");
      area.remove();
      return done;
    }
  }

  // "2026-11-23T07:36:56.123Z" from a datetime-local value read as UTC.
  const utcFromLocalInput = (value) => (value ? `${value.length === 16 ? `${value}:00` : value}Z` : "");
  const localInputFromDate = (date) => date.toISOString().slice(0, 19);

  // --------------------------------------------------------------------------------------- routing (the hash)
  // #events?q=…, #webhooks, #metrics?group_by=…&interval=…&window=… — never the credential.
  function parseHash() {
    const raw = window.location.hash.replace(/^#/, "");
    const [view, query] = raw.split("?", 2);
    return { view: VIEWS.includes(view) ? view : "events", params: new URLSearchParams(query || "") };
  }

  function setHash(view, params) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params || {})) if (value) query.set(name, value);
    const hash = `#${view}${query.toString() ? `?${query}` : ""}`;
    if (window.location.hash === hash) route();
    else window.location.hash = hash;
  }

  function route() {
    clearError();
    if (!auth) {
      showView("signin");
      return;
    }
    const { view, params } = parseHash();
    showView(view);
    if (view === "events") events.open(params.get("q") || "");
    else if (view === "webhooks") webhooks.open();
    else metrics.open(params);
  }

  function showView(name) {
    for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${name}`;
    for (const link of document.querySelectorAll("#nav a")) {
      if (link.dataset.view === name) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    $("nav").hidden = !auth;
    $("who").hidden = !auth;
    $("who-tenant").textContent = auth ? `Tenant ${auth.tenant}` : "";
    if (name !== "events") events.stopTail();
    if (name !== "webhooks") webhooks.hideSecret();
  }

  // ------------------------------------------------------------------------------------------------ sign in
  function signOut(message) {
    sessionStorage.removeItem(AUTH_KEY);
    auth = null;
    events.reset();
    webhooks.hideSecret();
    // Nothing of the tenant stays in the page for whoever signs in next in this tab.
    for (const id of ["webhooks-body", "chart", "legend", "chips"]) $(id).replaceChildren();
    $("metrics-total").textContent = "";
    $("webhook-status").textContent = "";
    $("q").value = "";
    $("signin-secret").value = "";
    showView("signin");
    if (message) {
      $("alert").replaceChildren(document.createTextNode(message));
      $("alert").hidden = false;
    }
    $("signin-tenant").focus();
  }

  function setupSignIn() {
    const form = $("signin-form");
    form.addEventListener("change", () => {
      $("signin-secret-label").textContent = form.elements.kind.value === "jwt" ? "Bearer JWT" : "API key";
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const candidate = {
        tenant: form.elements.tenant.value.trim(),
        kind: form.elements.kind.value === "jwt" ? "jwt" : "key",
        secret: form.elements.secret.value.trim().replace(/^Bearer\s+/i, ""),
      };
      auth = candidate;
      try {
        // Any answer but 401 means the credential is valid (a 403 only lacks a scope the views will name).
        await api("GET", `${API}/events`, { limit: 1 });
      } catch (err) {
        if (err.status === 401 || err.status === 0 || (err.status === 400 && err.code === "invalid_request")) {
          auth = null;
          showError(err, { signOutOn401: false });
          return;
        }
      }
      sessionStorage.setItem(AUTH_KEY, JSON.stringify(candidate));
      form.elements.secret.value = "";
      clearError();
      route();
      $("main").focus();
    });
    $("sign-out").addEventListener("click", () => signOut());
  }

  // ------------------------------------------------------------------------------------------------- events
  const events = (() => {
    let generation = 0; // a newer search makes older responses stale
    let query = "";
    let nextToken = null;
    let loading = false;
    let total = null;
    let newest = null; // timestamp of the newest event shown
    let seen = new Set();
    let byId = new Map();
    let tailTimer = null;
    let totalTimer = null;
    let tailBusy = false;

    const body = $("events-body");

    function reset() {
      generation += 1;
      stopTail();
      nextToken = null;
      total = null;
      newest = null;
      seen = new Set();
      byId = new Map();
      body.replaceChildren();
      $("total").textContent = "";
      $("events-end").textContent = "";
      closeDetail();
    }

    // Search terms, split on spaces outside quotes (the API parses them; this only draws the chips).
    function terms(text) {
      return text.match(/-?[A-Za-z_]+:(?:"[^"]*"|\S)*|"[^"]*"|\S+/g) || [];
    }

    function qualifier(name, value) {
      return /[\s"]/.test(value) ? `${name}:"${value.replace(/"/g, "")}"` : `${name}:${value}`;
    }

    function addTerm(term) {
      const current = terms(query);
      if (!current.includes(term)) current.push(term);
      search(current.join(" "));
    }

    function removeTerm(term) {
      search(terms(query).filter((t) => t !== term).join(" "));
    }

    function search(text) {
      setHash("events", { q: text.trim() });
    }

    function drawChips() {
      const list = $("chips");
      list.replaceChildren();
      for (const term of terms(query)) {
        list.append(el("li", { class: "chip" }, el("span", { text: term }),
          el("button", { type: "button", "aria-label": `Remove filter ${term}`, text: "×", onclick: () => removeTerm(term) })));
      }
    }

    function drawTotal() {
      $("total").textContent = total === null ? "" : `${total.toLocaleString("en-US")} event${total === 1 ? "" : "s"}`;
    }

    function cellFilter(name, value, label) {
      if (value === null || value === undefined) return el("td", { class: "muted", text: "—" });
      return el("td", {}, el("button", {
        type: "button", class: `cell-filter ${label || ""}`.trim(), text: value, title: `Filter by ${name}:${value}`,
        "aria-label": `Filter by ${name} ${value}`,
        onclick: (event) => { event.stopPropagation(); addTerm(qualifier(name, value)); },
      }));
    }

    function row(item, fresh) {
      const tr = el("tr", { tabindex: "0", "data-id": item.event_id, class: fresh ? "fresh" : undefined },
        el("td", { class: "mono", text: item.timestamp }),
        cellFilter("type", item.event_type),
        cellFilter("severity", item.severity, `sev sev-${item.severity}`),
        cellFilter("agent", item.agent_id),
        cellFilter("resource", item.resource_id));
      tr.addEventListener("click", () => openDetail(item.event_id));
      return tr;
    }

    function remember(item) {
      seen.add(item.event_id);
      byId.set(item.event_id, item);
      if (!newest || item.timestamp > newest) newest = item.timestamp;
    }

    function append(items) {
      const rows = [];
      for (const item of items) {
        if (seen.has(item.event_id)) continue;
        remember(item);
        rows.push(row(item, false));
      }
      body.append(...rows);
    }

    async function open(text) {
      const wasTailing = tailTimer !== null;
      reset();
      query = text;
      $("q").value = text;
      drawChips();
      const mine = generation;
      loading = true;
      $("events-end").textContent = "Loading…";
      try {
        const page = await api("GET", `${API}/events`, { q: query, limit: PAGE_SIZE });
        if (mine !== generation) return;
        total = page.total;
        nextToken = page.next_token;
        append(page.items);
        drawTotal();
      } catch (err) {
        if (mine === generation) showError(err);
      } finally {
        if (mine === generation) {
          loading = false;
          drawEnd();
          if ($("live-tail").checked || wasTailing) startTail();
          fillViewport();
        }
      }
    }

    function drawEnd() {
      $("events-end").textContent = nextToken ? "" : body.children.length ? "End of results" : "No events match.";
    }

    async function more() {
      if (loading || !nextToken) return;
      loading = true;
      const mine = generation;
      $("events-end").textContent = "Loading more…";
      try {
        const page = await api("GET", `${API}/events`, { q: query, limit: PAGE_SIZE, next_token: nextToken });
        if (mine !== generation) return;
        nextToken = page.next_token;
        append(page.items);
      } catch (err) {
        if (mine === generation) showError(err);
        nextToken = null;
      } finally {
        if (mine === generation) {
          loading = false;
          drawEnd();
          fillViewport();
        }
      }
    }

    // Keep loading while the end of the list is visible (a tall window may show more than a page).
    function fillViewport() {
      const scroller = $("events-scroll");
      if (nextToken && !loading && scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - 200) more();
    }

    // --- live tail: poll for events at or after the newest one shown; ids already shown are skipped.
    async function tick() {
      if (tailBusy || !auth) return;
      tailBusy = true;
      const mine = generation;
      try {
        const from = newest ? new Date(Date.parse(newest) - TAIL_LOOKBACK_MS).toISOString() : undefined;
        let token = null;
        const found = [];
        for (let pages = 0; pages < 5; pages += 1) {
          const page = await api("GET", `${API}/events`, { q: query, from, limit: 200, next_token: token || undefined });
          if (mine !== generation) return;
          found.push(...page.items.filter((item) => !seen.has(item.event_id)));
          token = page.next_token;
          if (!token) break;
        }
        const unique = [...new Map(found.map((item) => [item.event_id, item])).values()];
        unique.sort((a, b) => (a.timestamp < b.timestamp ? 1 : a.timestamp > b.timestamp ? -1 : 0)); // newest first
        if (unique.length) {
          for (const item of unique) remember(item);
          body.prepend(...unique.map((item) => row(item, true)));
          total = (total || 0) + unique.length;
          drawTotal();
          drawEnd();
          scheduleTotal(mine);
        }
        $("tail-status").textContent = `Live · checked ${new Date().toISOString().slice(11, 19)} UTC`;
      } catch (err) {
        if (mine === generation) {
          stopTail();
          showError(err);
        }
      } finally {
        tailBusy = false;
      }
    }

    // The counts behind `total` follow writes within ~2 s: ask again once they have caught up.
    function scheduleTotal(mine) {
      clearTimeout(totalTimer);
      totalTimer = setTimeout(async () => {
        try {
          const page = await api("GET", `${API}/events`, { q: query, limit: 1 });
          if (mine === generation && page.total >= body.children.length) {
            total = page.total;
            drawTotal();
          }
        } catch (_) {
          // the next tick reports errors
        }
      }, 3000);
    }

    function startTail() {
      if (tailTimer !== null) return;
      $("live-tail").checked = true;
      tailTimer = setInterval(tick, TAIL_EVERY_MS);
      $("tail-status").textContent = "Live";
      tick();
    }

    function stopTail() {
      clearInterval(tailTimer);
      clearTimeout(totalTimer);
      tailTimer = null;
      $("live-tail").checked = false;
      $("tail-status").textContent = "";
    }

    // --- detail panel
    let detailFrom = null;

    function openDetail(id) {
      const item = byId.get(id);
      if (!item) return;
      detailFrom = body.querySelector(`tr[data-id="${CSS.escape(id)}"]`);
      for (const tr of body.querySelectorAll("tr[aria-selected]")) tr.removeAttribute("aria-selected");
      if (detailFrom) detailFrom.setAttribute("aria-selected", "true");
      $("detail-title").textContent = item.event_type;
      $("detail-json").textContent = JSON.stringify(item, null, 2);
      $("detail-copied").textContent = "";
      $("detail").hidden = false;
      $("detail-copy").focus();
    }

    function closeDetail() {
      $("detail").hidden = true;
      $("detail-json").textContent = "";
      if (detailFrom && document.contains(detailFrom)) detailFrom.focus();
      detailFrom = null;
    }

    function setup() {
      $("search-form").addEventListener("submit", (event) => {
        event.preventDefault();
        search($("q").value);
      });
      $("live-tail").addEventListener("change", (event) => (event.target.checked ? startTail() : stopTail()));
      $("events-scroll").addEventListener("scroll", fillViewport, { passive: true });
      new IntersectionObserver((entries) => {
        if (entries.some((entry) => entry.isIntersecting)) more();
      }, { root: $("events-scroll"), rootMargin: "200px" }).observe($("events-sentinel"));
      $("detail-close").addEventListener("click", closeDetail);
      $("detail-copy").addEventListener("click", async () => {
        const ok = await copyText($("detail-json").textContent);
        $("detail-copied").textContent = ok ? "Copied to the clipboard." : "Copy failed: select the text and copy it.";
      });
      // Keyboard: arrows move between rows, Enter/Space opens one, Escape closes the detail.
      body.addEventListener("keydown", (event) => {
        const tr = event.target.closest("tr");
        if (!tr || event.target !== tr) return;
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          openDetail(tr.dataset.id);
        } else if (event.key === "ArrowDown" && tr.nextElementSibling) {
          event.preventDefault();
          tr.nextElementSibling.focus();
        } else if (event.key === "ArrowUp" && tr.previousElementSibling) {
          event.preventDefault();
          tr.previousElementSibling.focus();
        }
      });
      document.addEventListener("keydown", (event) => {
        if (event.key === "Escape" && !$("detail").hidden) closeDetail();
      });
    }

    return { open, reset, setup, stopTail };
  })();

  // ----------------------------------------------------------------------------------------------- webhooks
  const webhooks = (() => {
    let replayTarget = null;

    function hideSecret() {
      $("secret-box").hidden = true;
      $("secret-value").textContent = "";
      $("secret-for").textContent = "";
    }

    function showSecret(hook) {
      $("secret-for").textContent = hook.url;
      $("secret-value").textContent = hook.secret;
      $("secret-box").hidden = false;
      $("secret-copy").focus();
    }

    function say(text) {
      $("webhook-status").textContent = text;
    }

    // Recent health from the delivery log: share of succeeded attempts among the last 100, the newest error,
    // and how many deliveries were dead-lettered (counted up to 500).
    async function health(hook) {
      const path = `${API}/webhooks/${encodeURIComponent(hook.id)}/deliveries`;
      const [recent, dead] = await Promise.all([
        api("GET", path, { limit: 100 }),
        api("GET", path, { limit: 500, status: "dead_lettered" }),
      ]);
      const attempts = recent.items;
      const succeeded = attempts.filter((a) => a.status === "succeeded").length;
      const failed = attempts.find((a) => a.status !== "succeeded");
      return {
        rate: attempts.length ? `${Math.round((100 * succeeded) / attempts.length)}% of ${attempts.length}` : "no deliveries yet",
        lastError: failed ? `${failed.attempted_at}: ${failed.error || `HTTP ${failed.status_code}`}` : "—",
        dead: `${dead.items.length}${dead.next_token ? "+" : ""}`,
      };
    }

    async function action(label, work) {
      clearError();
      try {
        await work();
      } catch (err) {
        showError(err);
        return;
      }
      say(label);
      await open(false);
    }

    function actions(hook) {
      const enabled = hook.status === "enabled";
      const path = `${API}/webhooks/${encodeURIComponent(hook.id)}`;
      return el("td", { class: "actions" },
        el("button", {
          type: "button", text: enabled ? "Disable" : "Enable", "aria-label": `${enabled ? "Disable" : "Enable"} ${hook.url}`,
          onclick: () => action(`${enabled ? "Disabled" : "Enabled"} ${hook.url}.`,
            () => api("PATCH", path, undefined, { status: enabled ? "disabled" : "enabled" })),
        }),
        el("button", {
          type: "button", text: "Rotate secret", "aria-label": `Rotate the secret of ${hook.url}`,
          onclick: async () => {
            clearError();
            try {
              showSecret(await api("POST", `${path}/rotate-secret`));
              say(`New secret for ${hook.url}; the old one keeps signing for 24 hours.`);
            } catch (err) {
              showError(err);
            }
          },
        }),
        el("button", {
          type: "button", text: "Replay…", "aria-label": `Replay events to ${hook.url}`,
          onclick: () => openReplay(hook),
        }));
    }

    async function open(clearStatus = true) {
      if (clearStatus) say("");
      const tbody = $("webhooks-body");
      let list;
      try {
        list = await api("GET", `${API}/webhooks`);
      } catch (err) {
        showError(err);
        return;
      }
      const rows = await Promise.all(list.items.map(async (hook) => {
        let h;
        try {
          h = await health(hook);
        } catch (err) {
          h = { rate: "?", lastError: `could not read deliveries: ${err.message}`, dead: "?" };
        }
        return el("tr", { "data-id": hook.id },
          el("td", {}, el("span", { class: "mono", text: hook.url }), hook.description ? el("div", { class: "muted", text: hook.description }) : null),
          el("td", { class: "mono", text: hook.event_types.join(", ") }),
          el("td", { text: hook.status + (hook.disabled_reason ? ` (${hook.disabled_reason})` : "") }),
          el("td", { class: "rate", text: h.rate }),
          el("td", { class: "dead", text: h.dead }),
          el("td", { class: h.lastError === "—" ? "last-error muted" : "last-error", text: h.lastError }),
          actions(hook));
      }));
      tbody.replaceChildren(...rows);
      $("webhooks-empty").hidden = rows.length > 0;
    }

    function openReplay(hook) {
      replayTarget = hook;
      const now = new Date();
      $("replay-for").textContent = hook.url;
      $("replay-from").value = localInputFromDate(new Date(now.getTime() - 3600 * 1000));
      $("replay-to").value = localInputFromDate(now);
      $("replay-form").hidden = false;
      $("replay-from").focus();
    }

    function setup() {
      $("webhook-create").addEventListener("submit", async (event) => {
        event.preventDefault();
        const form = event.target;
        const body = {
          url: form.elements.url.value.trim(),
          event_types: form.elements.event_types.value.split(",").map((t) => t.trim()).filter(Boolean),
        };
        if (form.elements.description.value.trim()) body.description = form.elements.description.value.trim();
        clearError();
        try {
          const hook = await api("POST", `${API}/webhooks`, undefined, body);
          form.reset();
          showSecret(hook);
          say(`Created ${hook.url}.`);
          await open(false);
        } catch (err) {
          showError(err);
        }
      });
      $("replay-form").addEventListener("submit", async (event) => {
        event.preventDefault();
        if (!replayTarget) return;
        const body = { from: utcFromLocalInput($("replay-from").value) };
        if ($("replay-to").value) body.to = utcFromLocalInput($("replay-to").value);
        clearError();
        try {
          const done = await api("POST", `${API}/webhooks/${encodeURIComponent(replayTarget.id)}/replay`, undefined, body);
          $("replay-form").hidden = true;
          say(`Replay queued: ${done.count} event${done.count === 1 ? "" : "s"} to ${replayTarget.url}${done.truncated ? " (window truncated)" : ""}.`);
          replayTarget = null;
        } catch (err) {
          showError(err);
        }
      });
      $("replay-cancel").addEventListener("click", () => {
        $("replay-form").hidden = true;
        replayTarget = null;
      });
      $("secret-dismiss").addEventListener("click", hideSecret);
      $("secret-copy").addEventListener("click", async () => {
        say((await copyText($("secret-value").textContent)) ? "Secret copied." : "Copy failed: select the secret and copy it.");
      });
    }

    return { open, setup, hideSecret };
  })();

  // ------------------------------------------------------------------------------------------------ metrics
  const metrics = (() => {
    const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563",
      "#65a30d", "#9333ea", "#0d9488", "#b45309"];
    const SEVERITY_COLORS = { info: "#2563eb", warn: "#d97706", error: "#dc2626" };
    const W = 900;
    const H = 320;
    const PAD = { left: 56, right: 16, top: 16, bottom: 48 };

    function selected(params) {
      const group = params.has("group_by") ? params.get("group_by") : "event_type";
      return {
        group_by: ["event_type", "severity"].includes(group) ? group : "",
        interval: params.get("interval") === "day" ? "day" : "hour",
        window: ["24", "168", "720"].includes(params.get("window")) ? params.get("window") : "24",
      };
    }

    async function open(params) {
      const choice = selected(params);
      const form = $("metrics-form");
      form.elements.group_by.value = choice.group_by;
      form.elements.interval.value = choice.interval;
      form.elements.window.value = choice.window;
      const from = new Date(Date.now() - Number(choice.window) * 3600 * 1000).toISOString();
      try {
        const data = await api("GET", `${API}/metrics`, { from, group_by: choice.group_by, interval: choice.interval });
        draw(data);
      } catch (err) {
        showError(err);
      }
    }

    function buckets(data) {
      const step = data.interval === "day" ? 86400000 : 3600000;
      const start = Date.parse(data.from);
      const end = Date.parse(data.to);
      const times = [];
      for (let t = start; t <= end && times.length < 2000; t += step) times.push(t);
      return times;
    }

    function draw(data) {
      const times = buckets(data);
      const series = data.series.slice().sort((a, b) => b.total - a.total);
      const color = (s, i) => (data.group_by === "severity" && SEVERITY_COLORS[s.key]) || PALETTE[i % PALETTE.length];
      const stacks = times.map(() => 0);
      const values = series.map((s) => {
        const counts = new Map(s.points.map((p) => [Date.parse(p.timestamp), p.count]));
        return times.map((t) => counts.get(t) || 0);
      });
      values.forEach((row) => row.forEach((v, i) => { stacks[i] += v; }));
      const top = Math.max(1, ...stacks);
      const plotW = W - PAD.left - PAD.right;
      const plotH = H - PAD.top - PAD.bottom;
      const slot = plotW / Math.max(1, times.length);
      const barW = Math.max(1, slot * 0.8);
      const y = (v) => PAD.top + plotH - (v / top) * plotH;
      const unit = data.interval === "day" ? "day" : "hour";

      const chart = svg("svg", {
        viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "chart-title chart-desc", class: "chart-svg",
      });
      chart.append(svg("title", { id: "chart-title" }, `Events per ${unit}`));
      chart.append(svg("desc", { id: "chart-desc" },
        `${data.total} events from ${data.from} to ${data.to}` +
        (series.length ? `: ${series.map((s) => `${s.key === null ? "all" : s.key} ${s.total}`).join(", ")}` : "")));
      // grid and y axis: 0, half, top
      for (const v of [0, Math.round(top / 2), top]) {
        chart.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: "grid" }));
        chart.append(svg("text", { x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end", class: "axis" }, String(v)));
      }
      // stacked bars, one rect per (series, interval) with a count
      const base = times.map(() => 0);
      series.forEach((s, si) => {
        const group = svg("g", { fill: color(s, si), "data-series": s.key === null ? "" : s.key, class: "series" });
        values[si].forEach((v, ti) => {
          if (!v) return;
          const x = PAD.left + ti * slot + (slot - barW) / 2;
          const rect = svg("rect", { x: x.toFixed(2), y: y(base[ti] + v).toFixed(2), width: barW.toFixed(2),
            height: Math.max(0.5, y(base[ti]) - y(base[ti] + v)).toFixed(2), class: "bar" });
          rect.append(svg("title", {}, `${s.key === null ? "events" : s.key}: ${v} at ${new Date(times[ti]).toISOString()}`));
          group.append(rect);
          base[ti] += v;
        });
        chart.append(group);
      });
      // x labels: about eight, evenly spaced
      const every = Math.max(1, Math.ceil(times.length / 8));
      times.forEach((t, i) => {
        if (i % every) return;
        const iso = new Date(t).toISOString();
        const label = unit === "day" ? iso.slice(5, 10) : `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
        chart.append(svg("text", { x: (PAD.left + i * slot + slot / 2).toFixed(2), y: H - PAD.bottom + 18, "text-anchor": "middle", class: "axis" }, label));
      });
      chart.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y(0), y2: y(0), class: "axis-line" }));
      $("chart").replaceChildren(chart);

      $("metrics-total").textContent = `${data.total.toLocaleString("en-US")} events, per ${unit}, ${data.from} – ${data.to} (UTC)`;
      $("legend").replaceChildren(...series.map((s, i) => el("li", {},
        swatch(color(s, i)),
        document.createTextNode(`${s.key === null ? (data.group_by ? "(none)" : "All events") : s.key}: ${s.total}`))));
    }

    function swatch(fill) {
      const box = svg("svg", { width: 12, height: 12, viewBox: "0 0 12 12", "aria-hidden": "true", class: "swatch" });
      box.append(svg("rect", { width: 12, height: 12, rx: 2, fill }));
      return box;
    }

    function setup() {
      $("metrics-form").addEventListener("submit", (event) => {
        event.preventDefault();
        const form = event.target;
        setHash("metrics", { group_by: form.elements.group_by.value || "none", interval: form.elements.interval.value, window: form.elements.window.value });
      });
    }

    return { open, setup };
  })();

  // -------------------------------------------------------------------------------------------------- start
  document.addEventListener("DOMContentLoaded", () => {
    setupSignIn();
    events.setup();
    webhooks.setup();
    metrics.setup();
    window.addEventListener("hashchange", route);
    // Another tab signing out does not reach this one (sessionStorage is per tab); nothing to sync.
    route();
  });
})();
