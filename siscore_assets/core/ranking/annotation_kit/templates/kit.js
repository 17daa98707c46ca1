
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("kit-data").textContent);
  const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
  const STORE = "siscore-kit:" + DATA.kit_id;
  const ALL = DATA.clusters.map((c) => c.id);
  const byNum = (a, b) => a - b;
  let state = { tiers: [[], []], pool: ALL.slice() };
  const selected = new Set();
  const cards = new Map();
  const $ = (id) => document.getElementById(id);
  const nameBox = $("annotator-name"), msg = $("message"), tiersEl = $("tiers");

  function say(text, kind) {
    msg.textContent = text;
    msg.className = kind || "";
    msg.setAttribute("role", kind === "error" ? "alert" : "status");
  }

  function buildCard(c) {
    const el = document.createElement("div");
    el.className = "card";
    el.tabIndex = 0;
    el.draggable = true;
    el.dataset.cluster = String(c.id);
    el.setAttribute("role", "button");
    el.setAttribute("aria-pressed", "false");
    const label = "Cluster " + c.id + (c.caption ? " (" + c.caption + ")" : "");
    el.setAttribute("aria-label", label);
    if (c.image) {
      const img = document.createElement("img");
      img.src = c.image;
      img.alt = c.images + " sample tiles of cluster " + c.id;
      img.draggable = false;
      el.appendChild(img);
    } else {
      const none = document.createElement("div");
      none.className = "noimg";
      none.textContent = "no sample images";
      el.appendChild(none);
    }
    const row = document.createElement("div");
    row.className = "label";
    const text = document.createElement("span");
    text.innerHTML = "<strong>Cluster " + c.id + "</strong> ";
    const cap = document.createElement("span");
    cap.className = "small";
    cap.textContent = c.caption;
    text.appendChild(cap);
    row.appendChild(text);
    if (c.image) {
      const zoom = document.createElement("button");
      zoom.type = "button";
      zoom.className = "zoom";
      zoom.textContent = "enlarge";
      zoom.setAttribute("aria-label", "Enlarge cluster " + c.id);
      zoom.addEventListener("click", (ev) => {
        ev.stopPropagation();
        $("zoom-img").src = c.image;
        $("zoom-img").alt = img_alt(c);
        $("zoom-caption").textContent = label;
        $("zoom").showModal();
      });
      row.appendChild(zoom);
    }
    el.appendChild(row);
    el.addEventListener("click", () => toggle(c.id));
    el.addEventListener("keydown", (ev) => onCardKey(ev, c.id));
    el.addEventListener("dragstart", (ev) => {
      const ids = selected.has(c.id) ? Array.from(selected) : [c.id];
      ev.dataTransfer.setData("text/plain", ids.join(","));
      ev.dataTransfer.effectAllowed = "move";
    });
    return el;
  }
  function img_alt(c) { return c.images + " sample tiles of cluster " + c.id; }

  function toggle(id) {
    if (selected.has(id)) selected.delete(id); else selected.add(id);
    paintSelection();
  }
  function paintSelection() {
    cards.forEach((el, id) => el.setAttribute("aria-pressed", selected.has(id) ? "true" : "false"));
    const n = selected.size;
    if (n) say(n + " selected: click \u201cPlace selected here\u201d on a tier, or press 1\u20139 / 0.");
  }

  function onCardKey(ev, id) {
    if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); toggle(id); return; }
    if (ev.key === "Escape") { selected.clear(); paintSelection(); say(""); return; }
    const ids = selected.size ? Array.from(selected) : [id];
    if (/^[1-9]$/.test(ev.key)) {
      const t = Number(ev.key) - 1;
      if (t < state.tiers.length) { ev.preventDefault(); moveTo(ids, t); cards.get(id).focus(); }
      else say("There is no tier " + ev.key + " yet: add one with \u201c+ Tier at bottom\u201d.", "error");
    } else if (ev.key === "0") { ev.preventDefault(); moveTo(ids, "pool"); cards.get(id).focus(); }
  }

  // Move clusters to a tier index, "pool", "new-top" or "new-bottom".
  function moveTo(ids, target) {
    ids = ids.map(Number).filter((id) => cards.has(id));
    if (!ids.length) return;
    const drop = (list) => list.filter((x) => !ids.includes(x));
    state.pool = drop(state.pool);
    state.tiers = state.tiers.map(drop);
    if (target === "pool") state.pool.push(...ids);
    else if (target === "new-top") state.tiers.unshift(ids.slice());
    else if (target === "new-bottom") state.tiers.push(ids.slice());
    else state.tiers[target].push(...ids);
    selected.clear();
    render();
    say(ids.length === 1 ? "Moved cluster " + ids[0] + "." : "Moved clusters " + ids.sort(byNum).join(", ") + ".");
  }

  function tierSection(i) {
    const sec = document.createElement("section");
    sec.className = "zone tier";
    sec.dataset.tier = String(i);
    sec.dataset.zone = String(i);
    sec.setAttribute("role", "region");
    const title = "Tier " + (i + 1) + (i === 0 ? " (most developed)" : "");
    sec.setAttribute("aria-label", title);
    const head = document.createElement("div");
    head.className = "zone-head";
    const h = document.createElement("h2");
    h.textContent = title;
    head.appendChild(h);
    const buttons = [["place", "Place selected here"], ["up", "\u2191"], ["down", "\u2193"],
                     ["insert", "+ Tier below"], ["remove", "Remove tier"]];
    for (const [cls, text] of buttons) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = cls;
      b.textContent = text;
      const what = { place: "Place selected in tier ", up: "Move up tier ", down: "Move down tier ",
                     insert: "Insert a tier below tier ", remove: "Remove tier " }[cls];
      b.setAttribute("aria-label", what + (i + 1));
      b.dataset.zone = String(i);
      head.appendChild(b);
    }
    sec.appendChild(head);
    const list = document.createElement("div");
    list.className = "cards";
    sec.appendChild(list);
    return sec;
  }

  function render(persist) {  // persist=false: show without writing (opening a kit saves nothing)
    tiersEl.textContent = "";
    state.tiers.forEach((tier, i) => {
      const sec = tierSection(i);
      const list = sec.querySelector(".cards");
      tier.sort(byNum).forEach((id) => list.appendChild(cards.get(id)));
      tiersEl.appendChild(sec);
    });
    const pool = $("pool").querySelector(".cards");
    state.pool.sort(byNum).forEach((id) => pool.appendChild(cards.get(id)));
    paintSelection();
    $("line-preview").value = line();
    if (persist !== false) save();
  }

  function ranked() { return state.tiers.filter((t) => t.length); }
  function line() { return ranked().map((t) => t.slice().sort(byNum).join("=")).join(">"); }

  function zoneOf(el) {
    const z = el && el.closest("[data-zone]");
    if (!z) return null;
    const v = z.dataset.zone;
    return /^\d+$/.test(v) ? Number(v) : v;
  }

  function onButton(ev) {
    const b = ev.target.closest("button");
    if (!b || !b.dataset.zone) return false;
    const z = zoneOf(b);
    if (b.classList.contains("place")) {
      if (!selected.size) { say("Select one or more clusters first (click them).", "error"); return true; }
      moveTo(Array.from(selected), z);
    } else if (b.classList.contains("up") && z > 0) {
      [state.tiers[z - 1], state.tiers[z]] = [state.tiers[z], state.tiers[z - 1]]; render();
    } else if (b.classList.contains("down") && z < state.tiers.length - 1) {
      [state.tiers[z + 1], state.tiers[z]] = [state.tiers[z], state.tiers[z + 1]]; render();
    } else if (b.classList.contains("insert")) {
      state.tiers.splice(z + 1, 0, []); render();
    } else if (b.classList.contains("remove")) {
      state.pool.push(...state.tiers[z]); state.tiers.splice(z, 1);
      if (!state.tiers.length) state.tiers.push([]);
      render();
    }
    return true;
  }

  document.addEventListener("click", (ev) => {
    if (onButton(ev)) return;
    // A click on a zone's background (not a card) places the selection there.
    if (ev.target.closest(".card") || !selected.size) return;
    const z = zoneOf(ev.target);
    if (z !== null && ev.target.closest(".zone")) moveTo(Array.from(selected), z);
  });
  document.addEventListener("dragover", (ev) => {
    const zone = ev.target.closest && ev.target.closest(".zone");
    if (!zone) return;
    ev.preventDefault();
    ev.dataTransfer.dropEffect = "move";
    document.querySelectorAll(".zone.over").forEach((z) => z !== zone && z.classList.remove("over"));
    zone.classList.add("over");
  });
  document.addEventListener("dragleave", (ev) => {
    const zone = ev.target.closest && ev.target.closest(".zone");
    if (zone && !zone.contains(ev.relatedTarget)) zone.classList.remove("over");
  });
  document.addEventListener("drop", (ev) => {
    const zone = ev.target.closest && ev.target.closest(".zone");
    document.querySelectorAll(".zone.over").forEach((z) => z.classList.remove("over"));
    if (!zone) return;
    ev.preventDefault();
    const raw = ev.dataTransfer.getData("text/plain");
    if (/^\d+(,\d+)*$/.test(raw)) moveTo(raw.split(","), zoneOf(zone));
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && selected.size) { selected.clear(); paintSelection(); say(""); }
  });

  function validName() {
    let name = nameBox.value.trim();
    if (/\.pog$/i.test(name)) name = name.slice(0, -4);
    if (!name) return [null, "Type your name first: it names the file (<name>.pog)."];
    if (!NAME_RE.test(name)) {
      return [null, "The name may use only letters, digits, _ - and . (starting with a letter or digit, at most 64)."];
    }
    return [name, null];
  }

  function exportPog() {
    const [name, problem] = validName();
    if (problem) { say(problem, "error"); nameBox.focus(); return; }
    if (ranked().length < 2) {
      say("Put clusters in at least two tiers: a ranking needs a more and a less developed group.", "error");
      return;
    }
    const text = line() + "\n";
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    a.download = name + ".pog";
    document.body.appendChild(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 2000);
    const left = state.pool.length ? " " + state.pool.length + " cluster(s) left incomparable." : "";
    say("Saved " + name + ".pog (" + ranked().length + " tiers)." + left, "ok");
  }

  function loadLine() {
    const text = $("load-line").value.replace(/\s+/g, "");
    const problem = (p) => say("Cannot load: " + p, "error");
    if (!/^\d+([=>]\d+)*$/.test(text)) return problem("use digits, = and > only, e.g. 3=4>1>0");
    const tiers = text.split(">").map((t) => t.split("=").map(Number));
    const seen = new Set();
    for (const id of tiers.flat()) {
      if (!cards.has(id)) return problem("unknown cluster " + id);
      if (seen.has(id)) return problem("cluster " + id + " appears twice");
      seen.add(id);
    }
    state = { tiers: tiers, pool: ALL.filter((id) => !seen.has(id)) };
    selected.clear();
    render();
    say("Loaded " + tiers.length + " tiers.", "ok");
  }

  function save() {
    try { localStorage.setItem(STORE, JSON.stringify({ tiers: state.tiers, pool: state.pool, name: nameBox.value })); }
    catch (e) { /* storage disabled for file:// in some browsers: nothing is kept, nothing breaks */ }
  }
  function restore() {  // true when saved work on this kit was found and used
    try {
      const s = JSON.parse(localStorage.getItem(STORE) || "null");
      if (!s || !Array.isArray(s.tiers) || !Array.isArray(s.pool)) return false;
      const ids = s.tiers.flat().concat(s.pool).map(Number).sort(byNum);
      if (ids.join() !== ALL.slice().sort(byNum).join()) return false;
      state = { tiers: s.tiers.length ? s.tiers : [[]], pool: s.pool };
      nameBox.value = s.name || "";
      return s.pool.length < ALL.length || nameBox.value !== "";
    } catch (e) { /* a damaged saved state: start fresh */ }
    return false;
  }

  DATA.clusters.forEach((c) => cards.set(c.id, buildCard(c)));
  const restored = restore();
  $("export").addEventListener("click", exportPog);
  $("load").addEventListener("click", loadLine);
  $("add-tier").addEventListener("click", () => { state.tiers.push([]); render(); });
  $("add-tier-top").addEventListener("click", () => { state.tiers.unshift([]); render(); });
  $("reset").addEventListener("click", () => {
    if (!confirm("Clear the whole ranking?")) return;
    state = { tiers: [[], []], pool: ALL.slice() }; selected.clear(); render(); say("Cleared.");
  });
  nameBox.addEventListener("input", save);
  render(false);
  if (restored) say("Your saved work on this kit was restored.");
  document.body.dataset.restored = String(restored);
  document.body.dataset.ready = "true";
})();
