// The operator's page: one live stream of the daemon's state (server-sent events), drawn
// into the DOM as it comes. No framework, no CDN: the line PC may be offline.
"use strict";

const $ = (id) => document.getElementById(id);
const cssName = (text) => String(text).replace(/[^a-z0-9]+/gi, "-").toLowerCase();

function setText(id, text) {
  const node = $(id);
  if (node.textContent !== String(text)) node.textContent = text;
}

// A badge's colour comes from its text's class; its other classes stay (tests, CSS hooks).
function badge(node, text) {
  node.textContent = text;
  if (node.dataset.tone) node.classList.remove(node.dataset.tone);
  node.dataset.tone = cssName(text);
  node.classList.add("badge", node.dataset.tone);
}

function fixed(value, digits) {
  return typeof value === "number" ? value.toFixed(digits) : "-";
}

// A picture the evidence sink may still be writing: try again a few times.
function retryingImage(img, url) {
  let tries = 0;
  img.onerror = () => {
    if (tries++ < 20) setTimeout(() => { img.src = url + (url.includes("?") ? "&" : "?") + "try=" + tries; }, 300);
  };
  img.src = url;
}

function renderCamera(camera) {
  const id = "camera-" + cssName(camera.id);
  let card = $(id);
  if (!card) {
    card = $("camera-template").content.firstElementChild.cloneNode(true);
    card.id = id;
    card.dataset.camera = camera.id;
    card.querySelector(".name").textContent = camera.id;
    $("cameras").appendChild(card);
  }
  badge(card.querySelector(".state"), camera.state);
  card.querySelector(".frame-id").textContent = camera.frame_id ?? "-";
  const verdict = card.querySelector(".verdict");
  verdict.textContent = camera.verdict === "nok" ? "NOK " + camera.classes.join(", ") : (camera.verdict || "");
  verdict.className = "verdict " + (camera.verdict || "");
  card.querySelector(".error").textContent = camera.state === "ok" ? "" : (camera.error || "");
  const img = card.querySelector(".frame");
  // One picture in flight per camera: a slow link gets fewer pictures, not a queue of them.
  if (camera.frame_url && img.dataset.want !== camera.frame_url) {
    img.dataset.want = camera.frame_url;
    if (img.dataset.loading !== "1") {
      img.dataset.loading = "1";
      img.onload = img.onerror = () => {
        img.dataset.loading = "0";
        if (img.dataset.want !== img.dataset.shown) { img.dataset.shown = img.dataset.want; img.src = img.dataset.want; img.dataset.loading = "1"; }
      };
      img.dataset.shown = camera.frame_url;
      img.src = camera.frame_url;
    }
  }
}

function renderEvents(events) {
  setText("newest-frame-id", events.length ? events[0].frame_id : "-");
  const list = $("events");
  const existing = new Map([...list.children].map((li) => [li.dataset.eventId, li]));
  const items = events.map((event) => {
    let li = existing.get(event.event_id);
    if (li) return li;
    li = document.createElement("li");
    li.dataset.eventId = event.event_id;
    li.dataset.frameId = event.frame_id;
    li.dataset.camera = event.camera;
    const img = document.createElement("img");
    img.className = "crop";
    img.alt = "defect crop";
    const crops = (event.evidence && event.evidence.crop_urls) || [];
    if (crops.length) retryingImage(img, crops[0]);
    const text = document.createElement("div");
    const defects = event.defects.map((d) => d.class + " " + d.score.toFixed(2)).join(", ");
    const time = new Date(event.captured_at).toLocaleTimeString();
    text.innerHTML = "<b></b> frame <b class='frame-id'></b><br><span></span><br><small></small>";
    text.children[0].textContent = event.camera;
    text.querySelector(".frame-id").textContent = event.frame_id;
    text.querySelector("span").textContent = defects;
    text.querySelector("small").textContent = time;
    li.append(img, text);
    return li;
  });
  items.forEach((li, i) => { if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null); });
  while (list.children.length > items.length) list.lastElementChild.remove();
}

function renderCounts(counts) {
  setText("count-ok", counts.ok);
  setText("count-nok", counts.nok);
  const classes = $("count-classes");
  for (const [name, n] of Object.entries(counts.classes)) {
    let li = [...classes.children].find((item) => item.dataset.class === name);
    if (!li) {
      li = document.createElement("li");
      li.dataset.class = name;
      li.innerHTML = "<span></span> <b></b>";
      li.firstChild.textContent = name;
      classes.appendChild(li);
    }
    if (li.lastChild.textContent !== String(n)) li.lastChild.textContent = n;
  }
  for (const li of [...classes.children]) if (!(li.dataset.class in counts.classes)) li.remove();
  drawChart(counts.minutes);
}

function drawChart(minutes) {
  const canvas = $("chart");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, n = 60;
  ctx.clearRect(0, 0, w, h);
  const top = Math.max(1, ...minutes.map(([ok, nok]) => ok + nok));
  const bar = w / n;
  minutes.slice(-n).forEach(([ok, nok], i) => {
    const x = (n - minutes.slice(-n).length + i) * bar;
    const hOk = (ok / top) * (h - 2), hNok = (nok / top) * (h - 2);
    ctx.fillStyle = "#3f9a55";
    ctx.fillRect(x, h - hOk, bar - 1, hOk);
    ctx.fillStyle = "#d6336c";
    ctx.fillRect(x, h - hOk - hNok, bar - 1, hNok);
  });
}

function render(status) {
  setText("line", status.line);
  setText("model-name", status.model.name);
  setText("model-accuracy", status.model.test_accuracy == null ? "-" : fixed(status.model.test_accuracy, 3));
  badge($("broker-state"), status.broker.state);
  $("broker-state").title = status.broker.detail || "";
  badge($("outbox-state"), status.outbox.state);
  setText("outbox-backlog", status.outbox.state === "off" ? "" : status.outbox.backlog + " waiting");
  setText("fps", fixed(status.stats.fps, 1));
  setText("latency-p50", fixed(status.stats.latency_p50_ms, 0));
  setText("latency-p99", fixed(status.stats.latency_p99_ms, 0));
  setText("dropped", status.stats.dropped ?? "-");
  status.cameras.forEach(renderCamera);
  renderEvents(status.events);
  renderCounts(status.counts);
  document.body.dataset.version = status.version;
}

function connect() {
  const stream = new EventSource("/api/stream");
  stream.onopen = () => badge($("connection"), "live");
  stream.onmessage = (message) => render(JSON.parse(message.data));
  stream.onerror = () => badge($("connection"), "lost"); // EventSource reconnects by itself
}

connect();
