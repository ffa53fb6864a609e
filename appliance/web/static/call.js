// Call page: both parties' waveform with the timeline of speech, overlaps, interruptions,
// silences, holds, tones and tags drawn over it; clicking seeks the player; the transcript
// follows it.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("call-data").textContent);
  const canvas = document.getElementById("wave");
  const audio = document.getElementById("audio");
  const box = document.getElementById("timeline");
  const css = getComputedStyle(document.documentElement);
  const color = (n) => css.getPropertyValue(n).trim();
  let wave = null;
  const duration = () => (wave && wave.duration_s) || data.duration_s || (audio && audio.duration) || 1;

  function draw() {
    const ctx = canvas.getContext("2d");
    const W = canvas.width, H = canvas.height, mid = H / 2, x = (t) => (t / duration()) * W;
    ctx.clearRect(0, 0, W, H);
    for (const s of data.silences) { ctx.fillStyle = color("--silence"); ctx.globalAlpha = 0.5; ctx.fillRect(x(s.start), 0, Math.max(1, x(s.end) - x(s.start)), H); }
    ctx.globalAlpha = 1;
    for (const h of data.holds || []) {       // on hold: the holding party's half, hatched
      const x0 = x(h.start), w = Math.max(1, x(h.end) - x0);
      const y0 = h.party === "client" ? mid : 0, hh = h.party === "both" ? H : mid;
      ctx.fillStyle = color("--hold"); ctx.globalAlpha = 0.25; ctx.fillRect(x0, y0, w, hh);
      ctx.globalAlpha = 0.6; ctx.strokeStyle = color("--hold"); ctx.beginPath();
      for (let s = x0 - hh; s < x0 + w; s += 8) {
        ctx.moveTo(Math.max(x0, s), y0 + Math.max(0, x0 - s));
        ctx.lineTo(Math.min(x0 + w, s + hh), y0 + Math.min(hh, x0 + w - s));
      }
      ctx.stroke();
    }
    ctx.globalAlpha = 1;
    for (const s of data.segments) {           // speech bands: agent on top, client below
      ctx.fillStyle = color(s.party === "agent" ? "--agent" : "--client");
      ctx.globalAlpha = 0.18;
      ctx.fillRect(x(s.start), s.party === "agent" ? 0 : mid, Math.max(1, x(s.end) - x(s.start)), mid);
    }
    ctx.globalAlpha = 1;
    if (wave) {
      const n = wave.agent.length;
      for (const [party, up] of [["agent", true], ["client", false]]) {
        ctx.fillStyle = color(party === "agent" ? "--agent" : "--client");
        wave[party].forEach((v, i) => {
          const h = (v / 255) * (mid - 6);
          ctx.fillRect((i / n) * W, up ? mid - h : mid, Math.max(1, W / n - 0.3), h);
        });
      }
    }
    ctx.fillStyle = color("--tone");         // tones and key presses: a strip at the edge
    for (const e of data.events || []) {
      ctx.fillRect(x(e.start), e.party === "agent" ? 0 : H - 5, Math.max(2, x(e.end) - x(e.start)), 5);
    }
    ctx.fillStyle = color("--overlap");
    for (const o of data.overlaps) ctx.fillRect(x(o.start), mid - 3, Math.max(2, x(o.end) - x(o.start)), 6);
    ctx.fillStyle = color("--bad");
    for (const i of data.interruptions) {
      const px = x(i.at), y = i.by === "agent" ? 10 : H - 10;
      ctx.beginPath(); ctx.moveTo(px, y - 7); ctx.lineTo(px + 6, y); ctx.lineTo(px, y + 7); ctx.fill();
    }
    ctx.fillStyle = "#e3b341";
    for (const t of data.tags) ctx.fillRect(x(t.at) - 1, 0, 3, H);
    if (audio && audio.currentTime) {
      ctx.fillStyle = "#101820"; ctx.fillRect(x(audio.currentTime) - 1, 0, 2, H);
    }
  }

  function seek(t) {
    if (!audio) return;
    audio.currentTime = t;
    audio.play().catch(() => {});
  }
  canvas.addEventListener("click", (ev) => {
    const r = canvas.getBoundingClientRect();
    seek(((ev.clientX - r.left) / r.width) * duration());
  });
  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("[data-seek]");
    if (b) seek(parseFloat(b.dataset.seek));
  });

  // highlight tag phrases inside the transcript lines (text nodes only: never HTML)
  const tagsEl = document.getElementById("tag-data");
  if (tagsEl) {
    const tags = JSON.parse(tagsEl.textContent);
    for (const el of document.querySelectorAll(".transcript .text")) {
      const at = parseFloat(el.dataset.at), party = el.dataset.party;
      const hits = tags.filter((t) => t.party === party && Math.abs(t.at - at) < 0.01 && t.text);
      let text = el.textContent;
      if (!hits.length) continue;
      el.textContent = "";
      let pos = 0;
      const spans = [];
      for (const h of hits) {
        const i = text.indexOf(h.text, pos);
        if (i >= 0) { spans.push([i, i + h.text.length, h.tag]); pos = i + h.text.length; }
      }
      pos = 0;
      for (const [a, b, tag] of spans) {
        el.appendChild(document.createTextNode(text.slice(pos, a)));
        const m = document.createElement("mark");
        m.className = "hit"; m.title = tag; m.textContent = text.slice(a, b);
        el.appendChild(m);
        pos = b;
      }
      el.appendChild(document.createTextNode(text.slice(pos)));
    }
  }

  const lines = Array.from(document.querySelectorAll(".transcript li"));
  if (audio) {
    audio.addEventListener("timeupdate", () => {
      draw();
      const t = audio.currentTime;
      let current = null;
      for (const li of lines) { if (parseFloat(li.dataset.start) <= t) current = li; }
      for (const li of lines) li.classList.toggle("now", li === current);
    });
    audio.addEventListener("loadedmetadata", draw);
  }
  draw();
  if (box.dataset.waveform) {
    fetch(box.dataset.waveform, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : null))
      .then((w) => { if (w) { wave = w; canvas.dataset.loaded = "1"; draw(); } });
  }
})();
