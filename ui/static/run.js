// Run page: node panels open from the graph; while the run goes, a server-sent event stream (/runs/ID/events)
// recolours the graph (the server redraws it), draws loss curves as epochs arrive, and shows the latest progress.
(function () {
  const dag = document.getElementById("dag");
  if (!dag) return;
  const runId = dag.dataset.run;

  function bindNodes() {
    dag.querySelectorAll("g.node").forEach((g) => {
      g.addEventListener("click", () => openNode(g.dataset.node));
    });
  }
  function openNode(name, scroll = true) {
    dag.querySelectorAll("g.node").forEach((g) => g.classList.toggle("selected", g.dataset.node === name));
    const panel = document.getElementById("detail-" + name);
    if (panel) { panel.open = true; if (scroll) panel.scrollIntoView({ block: "nearest" }); }
  }
  bindNodes();
  if (dag.dataset.live !== "1") return;

  const curves = {};  // node -> {series name -> [values]}
  const SVGNS = "http://www.w3.org/2000/svg";
  const colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"];

  function drawCurves() {
    const box = document.getElementById("live-curves");
    box.innerHTML = "";
    Object.entries(curves).forEach(([node, series]) => {
      const title = document.createElement("h3");
      title.textContent = node;
      box.appendChild(title);
      const W = 520, H = 200, L = 50, B = 24, T = 10, R = 10;
      const all = Object.values(series).flat().filter(Number.isFinite);
      let lo = Math.min(...all), hi = Math.max(...all);
      if (!(hi > lo)) { const pad = Math.abs(lo) * 0.5 || 0.5; lo -= pad; hi += pad; }  // as svg.flat_range
      if (lo < 0 && Math.min(...all) >= 0) lo = 0;  // a loss axis never goes negative
      const n = Math.max(...Object.values(series).map((s) => s.length));
      const svg = document.createElementNS(SVGNS, "svg");
      svg.setAttribute("class", "chart live-loss");
      svg.setAttribute("width", W); svg.setAttribute("height", H);
      svg.dataset.node = node;
      const x = (i) => L + (W - L - R) * (n > 1 ? i / (n - 1) : 0.5);
      const y = (v) => T + (H - T - B) * (1 - (v - lo) / (hi - lo));
      svg.innerHTML = `<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="#fafafa" stroke="#ddd"/>` +
        `<text class="tick" x="${L - 4}" y="${T + 10}" text-anchor="end">${hi.toPrecision(3)}</text>` +
        `<text class="tick" x="${L - 4}" y="${H - B}" text-anchor="end">${lo.toPrecision(3)}</text>` +
        `<text class="tick" x="${(L + W) / 2}" y="${H - 6}" text-anchor="middle">epoch (1..${n})</text>`;
      Object.entries(series).forEach(([name, values], k) => {
        const line = document.createElementNS(SVGNS, "polyline");
        line.setAttribute("points", values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" "));
        line.setAttribute("fill", "none"); line.setAttribute("stroke", colors[k % colors.length]);
        line.setAttribute("class", "series"); line.dataset.series = name;
        svg.appendChild(line);
        if (values.length === 1 && Number.isFinite(values[0])) {  // a one-point line draws nothing: a marker
          const dot = document.createElementNS(SVGNS, "circle");
          dot.setAttribute("cx", x(0).toFixed(1)); dot.setAttribute("cy", y(values[0]).toFixed(1));
          dot.setAttribute("r", 3.5); dot.setAttribute("fill", colors[k % colors.length]);
          dot.setAttribute("class", "point"); dot.dataset.series = name;
          svg.appendChild(dot);
        }
        const label = document.createElementNS(SVGNS, "text");
        label.setAttribute("x", L + 8 + 120 * k); label.setAttribute("y", T + 14);
        label.setAttribute("fill", colors[k % colors.length]); label.setAttribute("class", "legend");
        label.textContent = name;
        svg.appendChild(label);
      });
      box.appendChild(svg);
    });
  }

  let redraw = null;
  function refreshPage() {  // coalesce bursts of node events into one redraw
    // The page's graph, node panels and header (duration, cache count) all follow the store: one fetch of the
    // page itself swaps the three, so a node started after load gets its panel and the header never goes stale.
    if (redraw) return;
    redraw = setTimeout(() => {
      fetch(`/runs/${runId}`).then((r) => r.ok ? r.text() : null).then((html) => {
        redraw = null;
        if (!html || dag.dataset.live !== "1") return;
        const fresh = new DOMParser().parseFromString(html, "text/html");
        const selected = dag.querySelector("g.node.selected");
        const open = [...document.querySelectorAll("#node-list details[open]")].map((d) => d.id);
        ["dag", "node-list", "run-meta"].forEach((id) => {
          const now = document.getElementById(id), next = fresh.getElementById(id);
          if (now && next) now.innerHTML = next.innerHTML;
        });
        open.forEach((id) => { const d = document.getElementById(id); if (d) d.open = true; });
        bindNodes();
        if (selected) openNode(selected.dataset.node, false);
      }, () => { redraw = null; });
    }, 1000);
  }

  const source = new EventSource(`/runs/${runId}/events`);
  source.addEventListener("progress", (e) => {
    const ev = JSON.parse(e.data);
    const values = Object.entries(ev.values).map(([k, v]) => `${k} ${typeof v === "number" ? v.toPrecision(4) : v}`);
    document.getElementById("live-progress").textContent =
      `${ev.node}: ${ev.kind} ${ev.step}${ev.total ? "/" + ev.total : ""} ${values.join(" ")}`;
    if (ev.kind === "epoch") {
      const series = (curves[ev.node] = curves[ev.node] || {});
      Object.entries(ev.values).forEach(([k, v]) => {
        if (typeof v === "number" && k.includes("loss")) (series[k] = series[k] || []).push(v);
      });
      drawCurves();
    }
  });
  source.addEventListener("node", () => refreshPage());
  source.addEventListener("run", (e) => {
    const run = JSON.parse(e.data);
    const badge = document.getElementById("run-status");
    badge.textContent = run.status;
    badge.className = "badge state-" + run.status;
    document.getElementById("run-duration").textContent = run.duration.toFixed(1) + "s";
  });
  source.addEventListener("end", () => {
    // finished: reload once so the report link, variant table and node panels show the final state
    source.close();
    dag.dataset.live = "0";
    setTimeout(() => location.reload(), 500);
  });
})();
