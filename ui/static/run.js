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
  function openNode(name) {
    dag.querySelectorAll("g.node").forEach((g) => g.classList.toggle("selected", g.dataset.node === name));
    const panel = document.getElementById("detail-" + name);
    if (panel) { panel.open = true; panel.scrollIntoView({ block: "nearest" }); }
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
      if (!(hi > lo)) { lo -= 0.5; hi += 0.5; }
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
  function refreshDag() {  // coalesce bursts of node events into one redraw
    if (redraw) return;
    redraw = setTimeout(() => {
      redraw = null;
      fetch(`/runs/${runId}/dag`).then((r) => r.ok ? r.text() : null).then((html) => {
        if (html) {
          const selected = dag.querySelector("g.node.selected");
          dag.innerHTML = html;
          bindNodes();
          if (selected) openNode(selected.dataset.node);
        }
      });
    }, 300);
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
  source.addEventListener("node", () => refreshDag());
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
