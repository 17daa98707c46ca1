// The siScore map: the country's own imagery per year, siScore per year and change between
// any two years as coloured tile layers, district outlines with their aggregates, and a tile's
// record on click.  Everything it reads is in this folder (see site.json); nothing is fetched
// from elsewhere.
(function () {
  "use strict";
  const C = window.SISCORE;
  const $ = (id) => document.getElementById(id);
  const state = { mode: "score", year: C.years[C.years.length - 1], from: C.years[0],
    to: C.years[C.years.length - 1], opacity: 0.8, imagery: true };
  window.__siscore = { ready: false, idle: 0, errors: [], firstIdleMs: null, selected: null };

  $("title").textContent = "siScore · " + C.country;
  const notes = $("notes");
  (C.notes || []).forEach((n) => { const li = document.createElement("li"); li.textContent = n; notes.appendChild(li); });

  const style = { version: 8, sources: {}, layers: [
    { id: "background", type: "background", paint: { "background-color": "#1d1f21" } }] };
  const bounds = C.bounds || [-180, -85, 180, 85];
  const base = location.href.replace(/[?#].*$/, "").replace(/[^/]*$/, "");
  const abs = (url) => base + url;
  C.years.forEach((y) => {
    const im = C.imagery[String(y)];
    if (!im) return;
    style.sources["imagery-" + y] = { type: "raster", tiles: [abs(im.url)],
      tileSize: 256, minzoom: 8, maxzoom: 14, bounds: bounds };
    style.layers.push({ id: "imagery-" + y, type: "raster", source: "imagery-" + y,
      layout: { visibility: "none" } });
  });
  const valueLayer = (id, url) => {
    style.sources[id] = { type: "raster", tiles: [abs(url)], tileSize: 256,
      minzoom: 5, maxzoom: 8, bounds: bounds };
    style.layers.push({ id: id, type: "raster", source: id, layout: { visibility: "none" },
      paint: { "raster-resampling": "nearest", "raster-opacity": state.opacity,
        "raster-fade-duration": 0 } });
  };
  Object.entries(C.score).forEach(([y, url]) => valueLayer("score-" + y, url));
  Object.entries(C.change).forEach(([p, url]) => valueLayer("change-" + p, url));
  if (C.districts) {
    style.sources.districts = { type: "geojson", data: abs(C.districts) };
    style.layers.push({ id: "districts-fill", type: "fill", source: "districts",
      paint: { "fill-color": "#fff", "fill-opacity": ["case", ["boolean", ["feature-state", "hover"], false], 0.15, 0] } });
    style.layers.push({ id: "districts-line", type: "line", source: "districts",
      paint: { "line-color": "#ffffff", "line-width": 1, "line-opacity": 0.7 } });
  }
  style.sources.selected = { type: "geojson", data: { type: "FeatureCollection", features: [] } };
  style.layers.push({ id: "selected", type: "line", source: "selected",
    paint: { "line-color": "#ff2d55", "line-width": 3 } });

  const map = new maplibregl.Map({ container: "map", style: style, bounds: C.bounds ? [[bounds[0], bounds[1]], [bounds[2], bounds[3]]] : undefined,
    fitBoundsOptions: { padding: 20 }, minZoom: 4, maxZoom: 17, attributionControl: false,
    preserveDrawingBuffer: true });
  map.addControl(new maplibregl.NavigationControl(), "top-left");
  map.addControl(new maplibregl.ScaleControl(), "bottom-right");
  window.__siscore.map = map;
  // A tile the pyramid does not have (outside the country, a cloudy year) answers 404: that is
  // expected.  A failed load ends without a repaint, so ask for one, or 'idle' would never come.
  map.on("error", (e) => { const m = String(e && e.error && e.error.message || e);
    if (!/404|Not Found|AJAXError/.test(m)) window.__siscore.errors.push(m);
    map.triggerRepaint(); });
  // Ready = style and every visible tile loaded, nothing moving (polled: 'idle' does not come
  // after a last tile that failed).  firstIdleMs: time from navigation to the first ready.
  map.on("dataloading", () => { window.__siscore.ready = false; });
  setInterval(() => {
    const s = window.__siscore;
    const now = map.loaded() && map.areTilesLoaded() && !map.isMoving();
    if (now && s.firstIdleMs === null) s.firstIdleMs = performance.now();
    if (now) s.idle += 1;
    s.ready = now;
  }, 50);

  const visible = (id, on) => { if (map.getLayer(id)) map.setLayoutProperty(id, "visibility", on ? "visible" : "none"); };
  function legend() {
    const el = $("legend");
    if (state.mode === "imagery") { el.dataset.kind = "none"; el.innerHTML = '<div class="what">imagery · ' + state.year + "</div>"; return; }
    const s = C.scales[state.mode === "score" ? "score" : "change"];
    const grad = s.stops.map(([v, c]) => c + " " + (100 * (v - s.vmin) / (s.vmax - s.vmin)).toFixed(1) + "%").join(",");
    const mid = s.kind === "diverging" ? "<span>0</span>" : "";
    el.dataset.kind = s.kind; el.dataset.vmin = s.vmin; el.dataset.vmax = s.vmax;
    const what = state.mode === "score" ? s.label + " · " + state.year : s.label + " · " + state.from + " → " + state.to;
    el.innerHTML = '<div class="what">' + what + '</div><div class="bar" style="background:linear-gradient(to right,' + grad +
      ')"></div><div class="ticks"><span>' + s.vmin + "</span>" + mid + "<span>" + s.vmax + "</span></div>" +
      '<div class="kind">' + s.kind + " scale; grey/empty: no score" + (state.mode === "score" ? " or uninhabited" : "; faded: within the pair's noise (not significant)") + "</div>";
  }
  function apply() {
    C.years.forEach((y) => visible("imagery-" + y, state.imagery && y === (state.mode === "change" ? state.to : state.year)));
    Object.keys(C.score).forEach((y) => visible("score-" + y, state.mode === "score" && +y === state.year));
    Object.keys(C.change).forEach((p) => visible("change-" + p, state.mode === "change" && p === state.from + "_" + state.to));
    const pairKnown = C.change[state.from + "_" + state.to];
    $("change-controls").dataset.missing = pairKnown ? "" : "pick an earlier 'from' than 'to'";
    map.getStyle().layers.filter((l) => /^(score|change)-/.test(l.id))
      .forEach((l) => map.setPaintProperty(l.id, "raster-opacity", state.opacity));
    $("score-controls").hidden = state.mode === "change";  // the year: siScore and imagery
    $("change-controls").hidden = state.mode !== "change";
    $("year-label").textContent = state.year;
    legend();
    if (window.__siscore.selected) showTile(window.__siscore.selected.x, window.__siscore.selected.y);
  }

  const yr = $("year");
  yr.max = String(C.years.length - 1); yr.value = String(C.years.length - 1);
  yr.addEventListener("input", () => { state.year = C.years[+yr.value]; apply(); });
  document.querySelectorAll("input[name=mode]").forEach((r) => r.addEventListener("change", () => { state.mode = r.value; apply(); }));
  if (C.years.length < 2) document.querySelector("input[name=mode][value=change]").disabled = true;
  [["from", C.years.slice(0, -1), state.from], ["to", C.years.slice(1), state.to]].forEach(([id, ys, v]) => {
    const sel = $(id);
    ys.forEach((y) => { const o = document.createElement("option"); o.value = y; o.textContent = y; sel.appendChild(o); });
    sel.value = v;
    sel.addEventListener("change", () => { state[id] = +sel.value;
      if (state.from >= state.to) { if (id === "from") { state.to = C.years.find((y) => y > state.from); $("to").value = state.to; }
        else { state.from = C.years.slice().reverse().find((y) => y < state.to); $("from").value = state.from; } }
      apply(); });
  });
  $("opacity").addEventListener("input", (e) => { state.opacity = +e.target.value / 100;
    $("opacity-label").textContent = e.target.value + "%"; apply(); });
  $("show-imagery").addEventListener("change", (e) => { state.imagery = e.target.checked; apply(); });

  // Districts: aggregates on hover.
  let hovered = null;
  if (C.districts) {
    map.on("mousemove", "districts-fill", (e) => {
      const f = e.features && e.features[0];
      if (!f) return;
      if (hovered !== null) map.setFeatureState({ source: "districts", id: hovered }, { hover: false });
      hovered = f.id; map.setFeatureState({ source: "districts", id: hovered }, { hover: true });
      const p = f.properties;
      const rows = C.years.map((y) => "<tr><td>" + y + "</td><td>" + fmt(p["mean_" + y]) + "</td><td>" +
        fmt(p["area_mean_" + y]) + "</td><td>" + (p["tiles_" + y] || 0) + "</td></tr>").join("");
      const h = $("hover"); h.hidden = false; h.dataset.district = p.district_id;
      h.innerHTML = "<b>" + (p.name || ("district " + p.district_id)) + "</b>" + (p.province ? " · " + p.province : "") +
        "<table><tr><th>year</th><th>mean</th><th>area-weighted</th><th>tiles</th></tr>" + rows + "</table>";
    });
    map.on("mouseleave", "districts-fill", () => {
      if (hovered !== null) map.setFeatureState({ source: "districts", id: hovered }, { hover: false });
      hovered = null; $("hover").hidden = true;
    });
  }

  function fmt(v) { return v === null || v === undefined || Number.isNaN(+v) ? "–" : (+v).toFixed(3); }
  function tileXY(lng, lat) {
    const n = 1 << 14, r = lat * Math.PI / 180;
    return [Math.floor((lng + 180) / 360 * n), Math.floor((1 - Math.log(Math.tan(r) + 1 / Math.cos(r)) / Math.PI) / 2 * n)];
  }
  function lngLat(x, y) {
    const n = 1 << 14, lon = x / n * 360 - 180;
    const lat = Math.atan(Math.sinh(Math.PI * (1 - 2 * y / n))) * 180 / Math.PI;
    return [lon, lat];
  }
  function chart(scores) {
    const w = 180, h = 60, pad = 6, pts = [];
    scores.forEach((s, i) => { if (s !== null) pts.push([pad + i * (w - 2 * pad) / Math.max(1, scores.length - 1), h - pad - s * (h - 2 * pad)]); });
    const line = pts.map((p) => p.join(",")).join(" ");
    return '<svg class="chart" width="' + w + '" height="' + h + '" viewBox="0 0 ' + w + " " + h + '">' +
      '<rect x="0" y="0" width="' + w + '" height="' + h + '" fill="#f6f6f6"/>' +
      '<polyline fill="none" stroke="#2a6fdb" stroke-width="2" points="' + line + '"/>' +
      pts.map((p) => '<circle cx="' + p[0] + '" cy="' + p[1] + '" r="3" fill="#2a6fdb"/>').join("") + "</svg>";
  }
  async function showTile(x, y) {
    const box = $("tile");
    const cx = x >> 4, cy = y >> 4;
    let rec = null;
    try { const r = await fetch("cells/" + cx + "/" + cy + ".json"); if (r.ok) rec = (await r.json())[x + "_" + y] || null; } catch (err) { rec = null; }
    window.__siscore.selected = { x: x, y: y };
    const [w, n] = lngLat(x, y), [e, s] = lngLat(x + 1, y + 1);
    map.getSource("selected").setData({ type: "Feature", geometry: { type: "Polygon", coordinates: [[[w, n], [e, n], [e, s], [w, s], [w, n]]] } });
    const id = "14/" + x + "/" + y;
    box.hidden = false; box.dataset.tile = id;
    const head = '<button class="close" title="close">×</button><b>tile ' + id + "</b>";
    if (!rec) { box.innerHTML = head + '<p class="missing">no record for this tile: it is outside the country\'s grid for every year.</p>'; bindClose(); return; }
    const rows = C.years.map((yv, i) => '<tr data-year="' + yv + '" data-score="' + (rec.s[i] === null ? "" : rec.s[i]) +
      '" data-status="' + rec.st[i] + '"><td>' + yv + "</td><td>" + fmt(rec.s[i]) + "</td><td>" + rec.st[i] + "</td></tr>").join("");
    const ext = "webp";
    const imgs = C.years.map((yv, i) => "<figure>" + (rec.img[i] ? '<img alt="' + id + " " + yv + '" src="imagery/' + yv + "/14/" + x + "/" + y + "." + ext + '">'
      : '<div class="none">no image (' + rec.st[i] + ")</div>") + "<figcaption>" + yv + "</figcaption></figure>").join("");
    box.innerHTML = head + '<table><tr><th>year</th><th>siScore</th><th>status</th></tr>' + rows + "</table>" + chart(rec.s) +
      '<div class="images">' + imgs + "</div>";
    bindClose();
  }
  function bindClose() { const b = document.querySelector("#tile .close"); if (b) b.onclick = () => { $("tile").hidden = true; window.__siscore.selected = null; map.getSource("selected").setData({ type: "FeatureCollection", features: [] }); }; }
  map.on("click", (e) => { const [x, y] = tileXY(e.lngLat.lng, e.lngLat.lat); showTile(x, y); });
  window.__siscore.showTile = showTile;
  window.__siscore.tileXY = tileXY;
  window.__siscore.lngLat = lngLat;
  map.on("load", apply);
})();
