"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("kit-data").textContent);
  const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
  const STORE = "siscore-labels:" + DATA.kit_id;
  const CLASSES = DATA.classes;
  const TILES = DATA.tiles;
  const N = TILES.length;
  const KEYS = TILES.map((t) => t.tile_id + "|" + t.year);
  const VALID = new Set(CLASSES.concat(["skip"]));
  const PAGE = 12, COLS = 4;
  const KEYMAP = { "1": "urban", u: "urban", "2": "rural", r: "rural", "3": "uninhabited",
                   n: "uninhabited", s: "skip", "0": "skip" };
  const $ = (id) => document.getElementById(id);
  const nameBox = $("annotator-name"), msg = $("message");
  let labels = {};   // key -> one of CLASSES or "skip"
  let history = [];  // [{i, before}] for undo
  let cursor = 0;
  let mode = "single";

  function say(text, kind) {
    msg.textContent = text;
    msg.className = kind || "";
    msg.setAttribute("role", kind === "error" ? "alert" : "status");
  }
  function caption(i) { return "Tile " + (i + 1) + " of " + N + ": " + TILES[i].tile_id + " (" + TILES[i].year + ")"; }
  function nextOpen(i) {
    for (let k = 1; k <= N; k++) { const j = (i + k) % N; if (!(KEYS[j] in labels)) return j; }
    return Math.min(i + 1, N - 1);
  }

  function setLabel(i, value) {
    if (!VALID.has(value) || i < 0 || i >= N) return;
    const key = KEYS[i];
    history.push({ i: i, before: key in labels ? labels[key] : null });
    labels[key] = value;
    cursor = nextOpen(i);
    render();
    say((value === "skip" ? "Skipped " : "Labelled " + value + ": ") + TILES[i].tile_id + " (" + TILES[i].year + ").", "ok");
  }
  function undo() {
    const last = history.pop();
    if (!last) { say("Nothing to undo."); return; }
    const key = KEYS[last.i];
    if (last.before === null) delete labels[key]; else labels[key] = last.before;
    cursor = last.i;
    render();
    say("Undone: " + TILES[last.i].tile_id + " (" + TILES[last.i].year + ").");
  }
  function move(step) { cursor = Math.max(0, Math.min(N - 1, cursor + step)); render(); }

  function counts() {
    let done = 0, skipped = 0;
    for (const k of KEYS) { if (k in labels) { if (labels[k] === "skip") skipped++; else done++; } }
    return [done, skipped];
  }

  function tag(value) {
    const s = document.createElement("span");
    s.className = "tag " + (value || "");
    s.textContent = value || "not labelled";
    return s;
  }

  function renderSingle() {
    const t = TILES[cursor], value = labels[KEYS[cursor]];
    $("tile-img").src = t.image;
    $("tile-img").alt = "Satellite tile " + t.tile_id + " in " + t.year;
    const cap = $("tile-caption");
    cap.textContent = caption(cursor) + " \u2014 ";
    cap.appendChild(tag(value));
    document.querySelectorAll("#single .choice").forEach((b) => b.classList.toggle("on", b.dataset.label === value));
  }

  function renderGrid() {
    const page = Math.floor(cursor / PAGE), first = page * PAGE;
    $("page-text").textContent = "Page " + (page + 1) + " of " + Math.ceil(N / PAGE);
    const box = $("cards");
    box.textContent = "";
    for (let i = first; i < Math.min(N, first + PAGE); i++) {
      const t = TILES[i], value = labels[KEYS[i]];
      const card = document.createElement("div");
      card.className = "card" + (value ? " " + value : "") + (i === cursor ? " cursor" : "");
      card.dataset.index = String(i);
      card.tabIndex = 0;
      const img = document.createElement("img");
      img.src = t.image;
      img.alt = "Satellite tile " + t.tile_id + " in " + t.year;
      card.appendChild(img);
      const cap = document.createElement("div");
      cap.className = "cap";
      const where = document.createElement("span");
      where.textContent = t.tile_id + " (" + t.year + ")";
      cap.appendChild(where);
      cap.appendChild(tag(value));
      card.appendChild(cap);
      const buttons = document.createElement("div");
      buttons.className = "buttons";
      for (const [label, text] of [["urban", "U"], ["rural", "R"], ["uninhabited", "N"], ["skip", "S"]]) {
        const b = document.createElement("button");
        b.type = "button";
        b.dataset.label = label;
        b.dataset.index = String(i);
        b.textContent = text;
        b.setAttribute("aria-label", label + " " + t.tile_id + " " + t.year);
        buttons.appendChild(b);
      }
      card.appendChild(buttons);
      box.appendChild(card);
      if (i === cursor && card.scrollIntoView) card.scrollIntoView({ block: "nearest" });
    }
  }

  function render(persist) {  // persist=false: show without writing (opening a kit saves nothing)
    $("single").hidden = mode !== "single";
    $("grid").hidden = mode !== "grid";
    $("mode").textContent = mode === "single" ? "Grid (G)" : "One tile (G)";
    if (mode === "single") renderSingle(); else renderGrid();
    const [done, skipped] = counts();
    $("progress").value = done + skipped;
    $("progress-text").textContent = done + " of " + N + " labelled, " + skipped + " skipped";
    if (persist !== false) save();
  }

  function toggleMode() { mode = mode === "single" ? "grid" : "single"; render(); }

  document.addEventListener("keydown", (ev) => {
    if (ev.target === nameBox || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const key = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
    if (key in KEYMAP) { ev.preventDefault(); setLabel(cursor, KEYMAP[key]); }
    else if (key === "z" || key === "Backspace") { ev.preventDefault(); undo(); }
    else if (key === "ArrowRight") { ev.preventDefault(); move(1); }
    else if (key === "ArrowLeft") { ev.preventDefault(); move(-1); }
    else if (key === "ArrowDown" && mode === "grid") { ev.preventDefault(); move(COLS); }
    else if (key === "ArrowUp" && mode === "grid") { ev.preventDefault(); move(-COLS); }
    else if (key === "g") { ev.preventDefault(); toggleMode(); }
  });
  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-label]");
    if (b) { setLabel(b.dataset.index !== undefined ? Number(b.dataset.index) : cursor, b.dataset.label); return; }
    const card = ev.target.closest(".card");
    if (card) { cursor = Number(card.dataset.index); render(); }
  });

  function exportCsv() {
    let name = nameBox.value.trim();
    if (/\.labels\.csv$/i.test(name)) name = name.slice(0, -11);
    if (!name) { say("Type your name first: it names the file (<name>.labels.csv).", "error"); nameBox.focus(); return; }
    if (!NAME_RE.test(name)) {
      say("The name may use only letters, digits, _ - and . (starting with a letter or digit, at most 64).", "error");
      return;
    }
    const rows = [];
    TILES.forEach((t, i) => {
      const v = labels[KEYS[i]];
      if (CLASSES.includes(v)) rows.push(t.tile_id + "," + t.year + "," + v);
    });
    if (!rows.length) { say("Label at least one tile before exporting (skipped tiles are not exported).", "error"); return; }
    const text = "tile_id,year,label\n" + rows.join("\n") + "\n";
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
    a.download = name + ".labels.csv";
    document.body.appendChild(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 2000);
    say("Saved " + name + ".labels.csv (" + rows.length + " labels).", "ok");
  }

  function save() {
    try {
      localStorage.setItem(STORE, JSON.stringify({ labels: labels, history: history, cursor: cursor,
                                                   mode: mode, name: nameBox.value }));
    } catch (e) { /* storage disabled for file:// in some browsers: nothing is kept, nothing breaks */ }
  }
  function restore() {  // true when saved work on this kit was found and used
    try {
      const s = JSON.parse(localStorage.getItem(STORE) || "null");
      if (!s || typeof s.labels !== "object") return false;
      const known = new Set(KEYS);
      for (const [k, v] of Object.entries(s.labels)) if (known.has(k) && VALID.has(v)) labels[k] = v;
      history = Array.isArray(s.history) ? s.history.filter((h) => h && h.i >= 0 && h.i < N) : [];
      cursor = Number.isInteger(s.cursor) && s.cursor >= 0 && s.cursor < N ? s.cursor : 0;
      mode = s.mode === "grid" ? "grid" : "single";
      nameBox.value = s.name || "";
      return Object.keys(labels).length > 0 || nameBox.value !== "";
    } catch (e) { /* a damaged saved state: start fresh */ }
    return false;
  }

  const restored = restore();
  $("export").addEventListener("click", exportCsv);
  $("undo").addEventListener("click", undo);
  $("mode").addEventListener("click", toggleMode);
  $("prev").addEventListener("click", () => move(-1));
  $("next").addEventListener("click", () => move(1));
  $("page-prev").addEventListener("click", () => move(-PAGE));
  $("page-next").addEventListener("click", () => move(PAGE));
  $("reset").addEventListener("click", () => {
    if (!confirm("Clear every label?")) return;
    labels = {}; history = []; cursor = 0; render(); say("Cleared.");
  });
  nameBox.addEventListener("input", save);
  render(false);
  if (restored) { const [done, skipped] = counts(); say("Your saved work on this kit was restored (" + done + " labelled, " + skipped + " skipped)."); }
  document.body.dataset.restored = String(restored);
  document.body.dataset.ready = "true";
})();
