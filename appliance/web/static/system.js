// System page: the live figures, refreshed every 3 s from /api/v1/system.
"use strict";
(function () {
  const muted = document.querySelector("#calls-now td.muted");
  const emptyRow = muted ? muted.parentNode.cloneNode(true) : null;
  const set = (id, text) => { const el = document.getElementById(id); if (el) el.textContent = text; };
  async function refresh() {
    try {
      const r = await fetch("/api/v1/system", { credentials: "same-origin" });
      if (!r.ok) return;
      const s = await r.json();
      const st = s.status || {}, m = s.machine || {};
      set("active_calls", st.active_calls ?? 0);
      const bl = st.asr_backlog || {};
      set("asr_queue", bl.calls ?? 0);
      if (m.cpu_percent != null) set("cpu", m.cpu_percent.toFixed(1) + "%");
      set("memory", `${m.memory_available_mb} / ${m.memory_total_mb} MB`);
      const body = document.querySelector("#calls-now tbody");
      if (body && Array.isArray(st.calls)) {
        const rows = st.calls.map((c) => {
          const tr = document.createElement("tr");
          const mmss = `${Math.floor(c.seconds / 60)}:${String(c.seconds % 60).padStart(2, "0")}`;
          for (const v of [c.agent || "—", c.client || "—", c.source, mmss]) {
            const td = document.createElement("td");
            td.textContent = v;                       // text, never HTML
            tr.appendChild(td);
          }
          return tr;
        });
        if (rows.length) body.replaceChildren(...rows);
        else if (emptyRow) body.replaceChildren(emptyRow.cloneNode(true));
      }
      if (st.disk && st.disk.free_mb != null) {
        set("disk", `${(st.disk.free_mb / 1024).toFixed(1)} GB · ${Math.round(st.disk.free_percent)}%`);
      }
    } catch (e) { /* the box is restarting: try again later */ }
  }
  setInterval(refresh, 3000);
  refresh();
})();
