// trio-b2bua operators' console: plain JavaScript, no build step, no third-party code.
//
// Sign-in: the App's client id and secret go in one POST to /oauth/token.php and nowhere else
// (the secret field is cleared at once; the token lives in this closure, not in storage, so a
// reload signs out). Live data: the call list page and the counters are polled once a second
// (one request each, whatever the number of calls: an event stream per call would mean a
// thousand streams at a thousand calls); the selected call's timeline follows its
// Server-Sent Events stream, and its SIP trace is polled while it is shown.
"use strict";

(() => {
  const PAGE = 50;
  const POLL_MS = 1000;
  const DEVICES_MS = 5000;
  const DISPOSITIONS = ["answered", "busy", "failed", "no answer", "unknown", "not allowed"];
  const $ = (id) => document.getElementById(id);

  let token = null;
  let startIndex = 0;
  let total = 0;
  let pollTimer = null;
  let devicesTimer = null;
  let selected = null; // {id, userId, extension, call}
  let selectedMessage = -1;
  let traceRows = [];
  let events = [];
  let eventsAbort = null;
  let polling = false;
  let shownCalls = ""; // what the call table shows: rebuilt only when it changes
  let shownLadder = "";
  let pageCalls = [];

  // --- small helpers -------------------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "className") node.className = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clock(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
  }

  function span(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = String(seconds % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }

  function callPath(call) {
    const ext = encodeURIComponent(call.extension).replace(/%2A/gi, "*");
    return `/uapi/phoneCalls/${call.userId}/${ext}/${call.id}`;
  }

  async function api(path, options = {}) {
    const response = await fetch(path, {
      ...options,
      headers: { ...(options.headers || {}), Authorization: `Bearer ${token}` },
      cache: "no-store",
      credentials: "omit",
    });
    if (response.status === 401) {
      signOut("Your session has expired: sign in again.");
      throw new Error("signed out");
    }
    return response;
  }

  // --- signing in and out --------------------------------------------------------------------

  async function signIn(event) {
    event.preventDefault();
    const idField = $("client-id");
    const secretField = $("client-secret");
    const body = new URLSearchParams({
      grant_type: "client_credentials",
      client_id: idField.value.trim(),
      client_secret: secretField.value,
    });
    secretField.value = "";
    const error = $("signin-error");
    error.hidden = true;
    let response;
    try {
      // credentials "omit": the endpoint's 401 carries a Basic challenge (RFC 6749 5.2), which
      // would make the browser open its own password dialog instead of answering the page
      response = await fetch("/oauth/token.php", {
        method: "POST",
        body,
        cache: "no-store",
        credentials: "omit",
      });
    } catch (exc) {
      showSignInError("The server cannot be reached.");
      return;
    }
    if (response.ok) {
      const data = await response.json();
      token = data.access_token;
      $("who").textContent = `signed in as ${idField.value.trim()}`;
      start();
      return;
    }
    if (response.status === 429) {
      const wait = response.headers.get("Retry-After") || "a few";
      showSignInError(`Too many failed sign-ins: wait ${wait} s and try again.`);
    } else if (response.status === 400 || response.status === 401) {
      showSignInError("Wrong client id or secret.");
    } else {
      showSignInError(`Sign-in failed (HTTP ${response.status}).`);
    }
  }

  function showSignInError(text) {
    const error = $("signin-error");
    error.textContent = text;
    error.hidden = false;
  }

  function start() {
    $("signin").hidden = true;
    $("console").hidden = false;
    $("signout").hidden = false;
    startIndex = 0;
    poll();
    pollDevices();
    pollTimer = setInterval(poll, POLL_MS);
    devicesTimer = setInterval(pollDevices, DEVICES_MS);
  }

  function signOut(message) {
    token = null;
    shownCalls = "";
    shownLadder = "";
    $("devices").tBodies[0].dataset.shown = "";
    clearInterval(pollTimer);
    clearInterval(devicesTimer);
    stopEvents();
    selected = null;
    $("console").hidden = true;
    $("detail").hidden = true;
    $("signout").hidden = true;
    $("signin").hidden = false;
    $("who").textContent = "";
    if (message) showSignInError(message);
  }

  // --- the call list and counters ------------------------------------------------------------

  async function poll() {
    if (!token || polling) return;
    polling = true;
    try {
      const state = $("state-filter").value;
      const [summary, page] = await Promise.all([
        api("/uapi/console/summary").then((r) => r.json()),
        api(`/uapi/console/calls?state=${state}&count=${PAGE}&startIndex=${startIndex}`).then((r) => r.json()),
      ]);
      renderCounters(summary);
      renderCalls(page);
      if (selected) await refreshSelected(page.entry);
      $("updated").textContent = new Date().toLocaleTimeString([], { hour12: false });
    } catch (exc) {
      if (token) $("updated").textContent = `error: ${exc.message}`;
    } finally {
      polling = false;
    }
  }

  function renderCounters(s) {
    $("count-live").textContent = s.liveCalls;
    $("count-ringing").textContent = s.ringing;
    $("count-bridged").textContent = s.bridged;
    $("count-ended").textContent = s.endedCalls;
    $("count-devices").textContent = s.registeredDevices;
    $("count-server").textContent = s.serverLiveCalls;
  }

  function parties(call, role) {
    return (call.phoneCallView || []).filter((v) => v.role === role).map((v) => v.number).join(", ");
  }

  function timer(call) {
    const now = Date.now();
    if (call.ended) {
      return call.bridged ? `talked ${span(call.duration ?? 0)}` : "";
    }
    if (call.bridged) return `talking ${span((now - Date.parse(call.bridged)) / 1000)}`;
    return `ringing ${span((now - Date.parse(call.published)) / 1000)}`;
  }

  function result(call) {
    if (!call.ended) return "";
    const how = DISPOSITIONS[call.disposition] ?? String(call.disposition);
    return call.hangupCause ? `${how}: ${call.hangupCause}` : how;
  }

  function renderCalls(page) {
    total = page.totalResults;
    pageCalls = page.entry;
    const key = JSON.stringify([startIndex, page.entry]);
    if (key === shownCalls) {
      tickTimers();
      return;
    }
    shownCalls = key;
    const rows = page.entry.map((call) => {
      const row = el(
        "tr",
        { "data-call": call.id, className: selected && selected.id === call.id ? "selected" : "" },
        el("td", { className: "call-id" }, call.id),
        el("td", { className: `state state-${call.state}` }, call.state),
        el("td", {}, parties(call, "source")),
        el("td", {}, parties(call, "destination")),
        el("td", {}, clock(call.published)),
        el("td", { className: "timer" }, timer(call)),
        el("td", {}, result(call)),
      );
      row.addEventListener("click", () => select(call));
      return row;
    });
    $("calls").tBodies[0].replaceChildren(...rows);
    // rows are rebuilt only when a call changed: a row being clicked stays the same element
    const last = Math.min(total, startIndex + page.entry.length);
    $("page-info").textContent = total ? `${startIndex + 1}-${last} of ${total}` : "no calls";
    $("prev-page").disabled = startIndex === 0;
    $("next-page").disabled = startIndex + PAGE >= total;
  }

  function tickTimers() {
    const cells = $("calls").tBodies[0].querySelectorAll("td.timer");
    pageCalls.forEach((call, index) => {
      if (cells[index]) cells[index].textContent = timer(call);
    });
  }

  // --- devices -------------------------------------------------------------------------------

  async function pollDevices() {
    if (!token) return;
    try {
      const data = await (await api("/uapi/registrations")).json();
      const rows = data.entry.map((d) =>
        el("tr", {}, el("td", {}, d.extension), el("td", {}, d.contact), el("td", {}, d.received), el("td", {}, clock(d.expires))),
      );
      const devices = $("devices").tBodies[0];
      const key = JSON.stringify(data.entry);
      if (devices.dataset.shown !== key) {
        devices.dataset.shown = key;
        devices.replaceChildren(...rows);
      }
    } catch (exc) {
      /* shown by the next poll */
    }
  }

  // --- one call: timeline and ladder ---------------------------------------------------------

  function select(call) {
    stopEvents();
    selected = { id: call.id, call };
    selectedMessage = -1;
    traceRows = [];
    events = [];
    shownLadder = "";
    $("message").textContent = "";
    $("detail").hidden = false;
    $("detail-id").textContent = call.id;
    $("pcap-link").href = "#";
    for (const row of $("calls").tBodies[0].rows) {
      row.classList.toggle("selected", row.dataset.call === call.id);
    }
    shownCalls = ""; // the selection is part of the rows' look
    renderDetail();
    if (!call.ended) followEvents(call);
    refreshSelected([call]);
  }

  async function refreshSelected(entries) {
    const current = selected;
    if (!current) return;
    let call = entries.find((c) => c.id === current.id);
    if (!call) {
      const r = await api(callPath(current.call));
      if (r.ok) call = (await r.json()).entry[0];
    }
    if (call) current.call = call;
    const r = await api(`${callPath(current.call)}/trace`);
    if (r.ok && selected === current) {
      traceRows = await r.json();
      renderDetail();
    }
  }

  async function pcapDownload(event) {
    event.preventDefault();
    if (!selected) return;
    const r = await api(`${callPath(selected.call)}/trace?format=pcap`);
    const blob = await r.blob();
    const url = URL.createObjectURL(blob);
    const a = el("a", { href: url, download: `${selected.id}.pcap` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  function stopEvents() {
    if (eventsAbort) eventsAbort.abort();
    eventsAbort = null;
  }

  async function followEvents(call) {
    const abort = new AbortController();
    eventsAbort = abort;
    try {
      const response = await api(`${callPath(call)}/events`, { signal: abort.signal });
      if (!response.ok || !response.body) return;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5)).join("\n");
          if (!data || !selected || selected.id !== call.id) continue;
          events.push(JSON.parse(data));
          renderDetail();
        }
      }
    } catch (exc) {
      /* aborted or the stream broke: the record still gives the timeline */
    }
  }

  function recordTimeline(call) {
    const items = [[call.published, "created"]];
    for (const view of call.phoneCallView || []) {
      if (view.answered) items.push([view.answered, `${view.number} answered`]);
      if (view.ended) {
        const why = [view.sipStatus, view.hangupCause].filter((x) => x !== undefined && x !== null).join(" ");
        items.push([view.ended, `${view.number} ended${why ? ` (${why})` : ""}`]);
      }
    }
    if (call.bridged) items.push([call.bridged, "bridged"]);
    if (call.ended) items.push([call.ended, `ended: ${result(call)}`]);
    return items.filter(([at]) => at).sort((a, b) => Date.parse(a[0]) - Date.parse(b[0]));
  }

  function eventTimeline() {
    return events.map((e) => {
      const party = e.data && e.data.party ? ` ${e.data.party}` : "";
      const cause = e.data && e.data.cause ? `: ${e.data.cause}` : "";
      return [e.at, `${e.event}${party}${cause}`];
    });
  }

  function renderDetail() {
    if (!selected) return;
    const call = selected.call;
    $("detail-state").textContent = `(${call.state}${call.ended ? "" : `, ${timer(call)}`})`;
    const items = events.length > 1 ? eventTimeline() : recordTimeline(call);
    $("timeline").replaceChildren(
      ...items.map(([at, what]) => el("li", {}, el("time", { dateTime: at }, clock(at)), what)),
    );
    renderLadder(call);
  }

  function label(text) {
    const first = text.split("\r\n", 1)[0];
    if (first.startsWith("SIP/2.0 ")) return first.slice(8); // "200 OK"
    return first.split(" ", 1)[0]; // the method
  }

  function renderLadder(call) {
    const sources = [];
    const destinations = [];
    for (const view of call.phoneCallView || []) {
      (view.role === "source" ? sources : destinations).push(view.number);
    }
    for (const row of traceRows) {
      if (!sources.includes(row.party) && !destinations.includes(row.party)) destinations.push(row.party);
    }
    const lanes = [...sources, "b2bua", ...destinations];
    const engine = sources.length;
    const ladder = $("ladder");
    const key = JSON.stringify([call.id, lanes, traceRows.length, selectedMessage]);
    if (key === shownLadder) return;
    shownLadder = key;
    ladder.style.gridTemplateColumns = `repeat(${lanes.length}, minmax(7rem, 1fr))`;
    const nodes = lanes.map((name) => el("div", { className: "lane", "data-lane": name }, name === "b2bua" ? "B2BUA" : name));
    const t0 = traceRows.length ? Date.parse(traceRows[0].ts) : 0;
    traceRows.forEach((row, index) => {
      const lane = lanes.indexOf(row.party);
      const partyLeft = lane < engine;
      const fromParty = row.direction === "in";
      const pointsRight = partyLeft === fromParty;
      const lo = Math.min(lane, engine);
      const hi = Math.max(lane, engine);
      const name = label(row.message);
      const seconds = ((Date.parse(row.ts) - t0) / 1000).toFixed(3);
      const arrow = el(
        "button",
        {
          type: "button",
          role: "listitem",
          className: `arrow ${pointsRight ? "right" : "left"} ${row.direction}${index === selectedMessage ? " selected" : ""}`,
          title: `${row.direction === "in" ? "from" : "to"} ${row.party} at ${row.peer}`,
          "data-index": String(index),
          "data-label": name,
        },
        el("span", { className: "label" }, name, el("span", { className: "at" }, `+${seconds} s`)),
      );
      arrow.style.gridRow = String(index + 2);
      arrow.style.gridColumn = `${lo + 1} / ${hi + 2}`;
      arrow.addEventListener("click", () => {
        selectedMessage = index;
        $("message").textContent = `${row.direction === "in" ? "received from" : "sent to"} ${row.peer} (${row.party}) at ${row.ts}\n\n${row.message}`;
        renderLadder(selected.call);
      });
      nodes.push(arrow);
    });
    ladder.replaceChildren(...nodes);
  }

  // --- wiring --------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("signin-form").addEventListener("submit", signIn);
    $("signout").addEventListener("click", () => signOut(""));
    $("pcap-link").addEventListener("click", pcapDownload);
    $("state-filter").addEventListener("change", () => {
      startIndex = 0;
      poll();
    });
    $("prev-page").addEventListener("click", () => {
      startIndex = Math.max(0, startIndex - PAGE);
      poll();
    });
    $("next-page").addEventListener("click", () => {
      if (startIndex + PAGE < total) startIndex += PAGE;
      poll();
    });
  });
})();
