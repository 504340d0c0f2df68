// The status page: one row per stream, kept up to date from /ws. No framework, no build step.
"use strict";

const HISTORY = 60; // seconds of ingest bit rate in each sparkline
const WARNINGS = 3; // warnings kept per row
const rows = new Map(); // stream name -> row state

const tbody = document.querySelector("#streams tbody");
const conn = document.getElementById("conn");
const empty = document.getElementById("empty");

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function fmtBitrate(bps) {
  if (bps >= 1e6) return (bps / 1e6).toFixed(2) + " Mb/s";
  if (bps >= 1e3) return (bps / 1e3).toFixed(0) + " kb/s";
  return bps + " b/s";
}

function row(name) {
  let r = rows.get(name);
  if (r) return r;
  const tr = el("tr");
  tr.dataset.stream = name;
  const cells = {};
  for (const c of ["name", "state", "msn", "codecs", "resolution", "bitrate", "pps", "held", "warnings", "preview"]) {
    cells[c] = el("td", c);
    tr.appendChild(cells[c]);
  }
  cells.name.textContent = name;
  const canvas = el("canvas");
  canvas.width = 160;
  canvas.height = 32;
  const rate = el("span", null, "–");
  const chart = el("div", "chart");
  chart.append(canvas, rate);
  cells.bitrate.appendChild(chart);
  const warnings = el("ul", "warnings");
  cells.warnings.appendChild(warnings);
  const play = el("button", null, "play");
  play.addEventListener("click", () => togglePreview(r));
  cells.preview.appendChild(play);
  r = { name, tr, cells, canvas, rate, warnings, play, history: [], player: null, video: null };
  rows.set(name, r);
  // Keep rows sorted by name.
  const after = [...rows.keys()].sort().find((n) => n > name);
  tbody.insertBefore(tr, after ? rows.get(after).tr : null);
  empty.hidden = true;
  return r;
}

function removeRow(name) {
  const r = rows.get(name);
  if (!r) return;
  stopPreview(r);
  r.tr.remove();
  rows.delete(name);
  empty.hidden = rows.size > 0;
}

function setState(r, state) {
  r.cells.state.replaceChildren(el("span", "badge " + state, state));
}

function setPosition(r, msn, part) {
  if (msn === null || msn === undefined) return;
  r.cells.msn.textContent = msn + "." + part;
}

function addWarning(r, message) {
  const li = el("li", null, new Date().toLocaleTimeString() + " " + message);
  li.title = message;
  r.warnings.prepend(li);
  while (r.warnings.children.length > WARNINGS) r.warnings.lastChild.remove();
}

function applyStatus(s) {
  const r = row(s.stream);
  setState(r, s.state);
  setPosition(r, s.msn, s.part);
  r.cells.codecs.textContent = s.codecs || "–";
  r.cells.resolution.textContent = s.resolution || "–";
  r.cells.held.textContent = s.held_requests;
}

function drawSparkline(r) {
  const c = r.canvas;
  const ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  const h = r.history;
  if (h.length < 2) return;
  const max = Math.max(...h, 1) * 1.1;
  // Newest sample at the right edge; the line grows leftwards as history fills.
  const offset = HISTORY - h.length;
  ctx.strokeStyle = getComputedStyle(document.body).getPropertyValue("--accent") || "#0969da";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  h.forEach((v, i) => {
    const x = ((i + offset) / (HISTORY - 1)) * (c.width - 2) + 1;
    const y = c.height - 2 - (v / max) * (c.height - 4);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  ctx.stroke();
}

function applyStats(name, s) {
  const r = rows.get(name);
  if (!r) return;
  r.history.push(s.ingest_bitrate);
  if (r.history.length > HISTORY) r.history.shift();
  r.rate.textContent = fmtBitrate(s.ingest_bitrate);
  r.cells.pps.textContent = s.parts_per_sec.toFixed(1);
  r.cells.held.textContent = s.held_requests;
  drawSparkline(r);
}

function onMessage(m) {
  switch (m.type) {
    case "snapshot": {
      const names = new Set(m.streams.map((s) => s.stream));
      for (const name of [...rows.keys()]) if (!names.has(name)) removeRow(name);
      m.streams.forEach(applyStatus);
      break;
    }
    case "stream_started":
      setState(row(m.stream), "live");
      break;
    case "part_published":
      setPosition(row(m.stream), m.msn, m.part);
      break;
    case "stream_idle":
    case "stream_ended":
      if (rows.has(m.stream)) setState(rows.get(m.stream), "ended");
      break;
    case "stream_removed":
      removeRow(m.stream);
      break;
    case "warning":
      addWarning(row(m.stream), m.message);
      break;
    case "stats":
      for (const [name, s] of Object.entries(m.streams)) applyStats(name, s);
      break;
    case "error":
      console.warn("server:", m.message);
      break;
  }
}

function togglePreview(r) {
  if (r.video) {
    stopPreview(r);
    return;
  }
  const src = "/live/" + r.name + "/index.m3u8";
  const video = el("video");
  video.muted = true;
  video.autoplay = true;
  video.playsInline = true;
  video.controls = true;
  r.video = video;
  r.play.textContent = "stop";
  if (window.Hls && window.Hls.isSupported()) {
    r.player = new window.Hls({ lowLatencyMode: true });
    r.player.loadSource(src);
    r.player.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = src; // Safari plays LL-HLS natively
  } else {
    r.cells.preview.appendChild(el("div", "note", "hls.js did not load"));
  }
  r.cells.preview.appendChild(video);
}

function stopPreview(r) {
  if (r.player) r.player.destroy();
  if (r.video) r.video.remove();
  r.cells.preview.querySelectorAll(".note").forEach((n) => n.remove());
  r.player = null;
  r.video = null;
  r.play.textContent = "play";
}

function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.onopen = () => {
    conn.textContent = "live";
    conn.className = "conn on";
  };
  ws.onmessage = (e) => {
    try {
      onMessage(JSON.parse(e.data));
    } catch (err) {
      console.error(err);
    }
  };
  ws.onclose = () => {
    conn.textContent = "reconnecting…";
    conn.className = "conn off";
    setTimeout(connect, 1000);
  };
}

connect();
