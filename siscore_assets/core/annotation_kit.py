"""The annotation kit: one self-contained HTML page in which a person ranks clusters into a POG.

Annotators are economists and people who know the country, not engineers: the page must open from
``file://`` with no server, no network and nothing to install.  So everything is inlined (CSS, JS,
the contact sheets as JPEG data URIs) and the page writes ``<name>.pog`` in the line syntax that
``core.pog.parse_line`` reads (``3=4=6>1=2=7>0``, most developed first, ``=`` ties, clusters left in
the "incomparable" pool unmentioned).  The cluster list is a parameter, so clusters from the
warehouse and clusters from a folder of images (``clusters/<id>/*.png``) share one renderer.

Also here: the fingerprint of an annotation folder, which the Dagster sensor compares between ticks.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .imagery import contact_sheet
from .tile_folder import cluster_image_paths

ImageLike = np.ndarray | str | os.PathLike
# The name the page accepts for `<name>.pog` (kept in sync with NAME_RE in the page's script).
ANNOTATOR_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ANNOTATION_FILE_GLOBS = ("*.pog", "pogs.txt", "annotators.txt")


@dataclass(frozen=True)
class AnnotationKit:
    """A rendered kit: the page, what it shows, and the images that could not be read."""

    html: str
    clusters: list[int]
    images_per_cluster: dict[int, int]
    skipped: list[str] = field(default_factory=list)
    preview: np.ndarray = field(default_factory=lambda: np.zeros((8, 8, 3), np.uint8))

    @property
    def size_bytes(self) -> int:
        return len(self.html.encode("utf-8"))


def folder_clusters(folder: str | os.PathLike) -> dict[int, list[Path]]:
    """Clusters from a folder laid out as ``<folder>/<cluster id>/<image>.png`` (the NK sample)."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"cluster image folder not found: {root}")
    for sub in root.iterdir():  # stricter than the trainer: a stray folder is a mistake here
        if sub.is_dir() and not sub.name.startswith(".") and not sub.name.isdigit():
            raise ValueError(f"{sub}: a cluster folder must be named by its integer cluster id")
    out = cluster_image_paths(root)
    if len(out) < 2:
        raise ValueError(f"{root}: found {len(out)} cluster folder(s); need at least 2 to rank")
    return out


def _load_rgb(item: ImageLike) -> np.ndarray:
    if isinstance(item, np.ndarray):
        arr = np.asarray(item)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4):
            raise ValueError(f"image array of shape {arr.shape}: need H x W x 3 (RGB)")
        if arr.dtype != np.uint8:
            raise ValueError(f"image array of dtype {arr.dtype}: need uint8")
        return arr[..., :3]
    with Image.open(item) as im:
        return np.asarray(im.convert("RGB"))


def _thumbnail(image: np.ndarray, px: int) -> np.ndarray:
    pil = ImageOps.fit(Image.fromarray(image), (px, px), method=Image.Resampling.LANCZOS)
    return np.asarray(pil)


def _jpeg_data_uri(image: np.ndarray, quality: int) -> str:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _pick(items: Sequence[ImageLike], k: int, rng: np.random.Generator) -> list[ImageLike]:
    if len(items) <= k:
        return list(items)
    return [items[i] for i in sorted(rng.choice(len(items), size=k, replace=False))]


def render_annotation_kit(
    clusters: Mapping[int, Sequence[ImageLike]],
    *,
    title: str,
    country: str = "",
    captions: Mapping[int, str] | None = None,
    instructions_note: str = "",
    samples: int = 8,
    cols: int = 4,
    thumb_px: int = 128,
    quality: int = 80,
    seed: int = 0,
) -> AnnotationKit:
    """Render the kit for ``{cluster_id: [uint8 RGB arrays or image paths]}``.

    Each cluster shows up to ``samples`` tiles (chosen with ``seed`` when more are given) as one
    JPEG contact sheet of ``thumb_px`` thumbnails.  Unreadable images are skipped and listed in
    ``skipped``; a cluster left with none is still rankable and says so.  Same input, same bytes.
    """
    ids = sorted(int(c) for c in clusters)
    if len(ids) < 2:
        raise ValueError(f"need at least 2 clusters to rank, got {len(ids)}")
    if any(c < 0 for c in ids):
        raise ValueError(f"cluster ids must be non-negative integers, got {ids}")
    if samples < 1 or cols < 1 or thumb_px < 8:
        raise ValueError("samples and cols must be >= 1 and thumb_px >= 8")
    rng = np.random.default_rng(seed)
    captions = captions or {}
    cards, skipped, counts, preview_rows = [], [], {}, []
    by_id = {int(k): v for k, v in clusters.items()}
    for cid in ids:
        thumbs = []
        for item in _pick(list(by_id[cid]), samples, rng):
            try:
                thumbs.append(_thumbnail(_load_rgb(item), thumb_px))
            except (OSError, ValueError, UnidentifiedImageError) as exc:
                where = item if not isinstance(item, np.ndarray) else f"cluster {cid} array"
                skipped.append(f"{where}: {exc}")
        counts[cid] = len(thumbs)
        sheet = contact_sheet(np.stack(thumbs), cols=min(cols, len(thumbs))) if thumbs else None
        row = np.zeros((cols, thumb_px, thumb_px, 3), np.uint8)
        for k, thumb in enumerate(thumbs[:cols]):
            row[k] = thumb
        preview_rows.append(row)
        cards.append({
            "id": cid,
            "caption": str(captions.get(cid, "")),
            "images": len(thumbs),
            "image": _jpeg_data_uri(sheet, quality) if sheet is not None else "",
        })
    kit_id = hashlib.sha256(json.dumps([country, ids]).encode()).hexdigest()[:16]
    data = {"title": title, "country": country, "kit_id": kit_id, "clusters": cards}
    values = {
        "TITLE": html.escape(title),
        "COUNTRY": html.escape(country),
        "N": str(len(ids)),
        "NOTE": html.escape(instructions_note),
        "CSS": _CSS,
        "JS": _JS,
        # '</' cannot appear inside <script>: escape it in the JSON.
        "DATA": json.dumps(data, separators=(",", ":")).replace("</", "<\\/"),
    }
    page = re.sub(r"__([A-Z]+)__", lambda m: values[m.group(1)], _TEMPLATE)  # one pass: no re-expansion
    preview = contact_sheet(np.concatenate(preview_rows), cols=cols)
    return AnnotationKit(page, ids, counts, skipped, preview)


def is_valid_annotator_name(name: str) -> bool:
    """What the page accepts as ``<name>`` in ``<name>.pog``: safe in any file system."""
    return bool(ANNOTATOR_NAME_RE.match(name))


def annotation_files(folder: str | os.PathLike, ignore: Iterable[str] = ()) -> list[Path]:
    """The files that make up a folder's POGs (``*.pog``, ``pogs.txt``, ``annotators.txt``)."""
    root = Path(folder)
    if not root.is_dir():
        return []
    skip = set(ignore)
    found = {p for pattern in ANNOTATION_FILE_GLOBS for p in root.glob(pattern)}
    return sorted(p for p in found if p.is_file() and p.name not in skip and not p.name.startswith("."))


def folder_fingerprint(folder: str | os.PathLike, ignore: Iterable[str] = ()) -> str | None:
    """A content hash of a folder's annotation files (names and bytes); None when there are none.

    Contents, not modification times: copying the same file again is no change, and an edit that
    keeps the size is one.
    """
    files = annotation_files(folder, ignore)
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        try:
            content = path.read_bytes()
        except OSError:  # removed between listing and reading: the next tick sees the new state
            continue
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(content).digest())
    return digest.hexdigest()


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>__CSS__</style>
</head>
<body>
<header>
  <h1>__TITLE__</h1>
  <p class="lede">Rank the __N__ clusters of <strong>__COUNTRY__</strong> by economic development.
  Each card shows sample satellite tiles of one cluster.</p>
  <details open>
    <summary>How to rank</summary>
    <ol>
      <li>Put the <em>most developed</em> clusters in <strong>Tier 1</strong> at the top, the next in
      Tier 2, and so on down. Several clusters in one tier are <em>equally</em> developed.</li>
      <li>Move a card by <strong>dragging</strong> it onto a tier, or <strong>select</strong> it
      (click, or Tab to it and press Enter/Space; select several for a tie) and then click
      <em>Place selected here</em> on a tier. With cards selected, keys <kbd>1</kbd>–<kbd>9</kbd> move
      them to that tier and <kbd>0</kbd> back to the pool; <kbd>Esc</kbd> clears the selection.</li>
      <li>Leave a cluster in <strong>Not ranked</strong> if you cannot compare it: it will be left
      incomparable to all others.</li>
      <li>Type your name and click <strong>Export</strong>: your browser saves
      <code>&lt;name&gt;.pog</code>. Send that file back. __NOTE__</li>
    </ol>
    <p class="small">Your work is kept in this browser between visits. Nothing leaves your computer.</p>
  </details>
</header>
<main>
  <section id="controls" aria-label="Export">
    <label for="annotator-name">Your name</label>
    <input id="annotator-name" type="text" autocomplete="off" spellcheck="false" maxlength="64"
      placeholder="e.g. eco_kim" aria-describedby="name-help">
    <span id="name-help" class="small">letters, digits, _ - . (the file is &lt;name&gt;.pog)</span>
    <button id="export" type="button" class="primary">Export</button>
    <button id="reset" type="button">Start over</button>
    <div id="message" role="status" aria-live="polite"></div>
    <label for="line-preview" class="small">Ranking line</label>
    <input id="line-preview" type="text" readonly aria-label="The ranking as it will be exported">
    <details id="load-box">
      <summary>Load a ranking line</summary>
      <input id="load-line" type="text" placeholder="3=4=6>1=2=7>0" aria-label="Ranking line to load">
      <button id="load" type="button">Load</button>
    </details>
  </section>
  <section id="pool" class="zone" data-zone="pool" role="region" aria-label="Not ranked: incomparable or not sure">
    <div class="zone-head"><h2>Not ranked <span class="small">(incomparable / not sure)</span></h2>
      <button type="button" class="place" data-zone="pool">Place selected here</button></div>
    <div class="cards"></div>
  </section>
  <section id="ranking" aria-label="Tiers, most developed first">
    <div class="toolbar"><button id="add-tier-top" type="button">+ Tier at top</button>
      <span class="small">Most developed</span></div>
    <div id="tiers"></div>
    <div id="drop-new-bottom" class="zone newtier" data-zone="new-bottom" role="region"
      aria-label="Drop here for a new tier at the bottom">Drop here for a new tier at the bottom</div>
    <div class="toolbar"><button id="add-tier" type="button">+ Tier at bottom</button>
      <span class="small">Least developed</span></div>
  </section>
</main>
<dialog id="zoom"><form method="dialog"><button type="submit" aria-label="Close">Close</button></form>
  <img id="zoom-img" alt=""><p id="zoom-caption"></p></dialog>
<script type="application/json" id="kit-data">__DATA__</script>
<script>__JS__</script>
</body>
</html>
"""

_CSS = """
*{box-sizing:border-box}body{font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
margin:0;color:#1d2433;background:#f4f5f7}header{padding:12px 20px;background:#fff;border-bottom:1px solid #d8dce3}
h1{font-size:20px;margin:4px 0}h2{font-size:15px;margin:0}.lede{margin:4px 0}.small{font-size:12px;color:#5a6475}
main{display:grid;grid-template-columns:minmax(280px,1fr) 2fr;gap:14px;padding:14px 20px}
#controls{grid-column:1/-1;display:flex;flex-wrap:wrap;gap:8px;align-items:center;background:#fff;padding:10px;
border:1px solid #d8dce3;border-radius:8px}#line-preview{flex:1;min-width:240px;font-family:monospace}
#message{flex-basis:100%;min-height:1.4em}#message.error{color:#b00020;font-weight:600}#message.ok{color:#156a2b}
input[type=text]{padding:5px 8px;border:1px solid #aab2bf;border-radius:5px;font-size:14px}
button{padding:5px 10px;border:1px solid #8d96a6;border-radius:5px;background:#fff;cursor:pointer;font-size:13px}
button.primary{background:#1f5fbf;border-color:#1f5fbf;color:#fff;font-weight:600}
button:focus-visible,.card:focus-visible,input:focus-visible{outline:3px solid #ffb000;outline-offset:1px}
.zone{background:#fff;border:2px dashed #c3c9d3;border-radius:8px;padding:8px;min-height:90px}
.zone.over{border-color:#1f5fbf;background:#eaf1fd}.zone-head{display:flex;gap:6px;align-items:center;flex-wrap:wrap;margin-bottom:6px}
.zone-head h2{flex:1}#pool{align-self:start;position:sticky;top:8px;max-height:calc(100vh - 16px);overflow:auto}
.tier{margin-bottom:8px}.tier h2{color:#1f5fbf}.newtier{display:flex;align-items:center;justify-content:center;
min-height:48px;color:#5a6475;margin-bottom:8px}.toolbar{display:flex;gap:10px;align-items:center;margin:6px 0}
.cards{display:flex;flex-wrap:wrap;gap:8px;min-height:40px}
.card{width:230px;background:#fafbfc;border:2px solid #d8dce3;border-radius:6px;padding:4px;cursor:grab;user-select:none}
.card[aria-pressed=true]{border-color:#ffb000;background:#fff6df;box-shadow:0 0 0 2px #ffb000}
.card img{width:100%;display:block;border-radius:3px;pointer-events:none}
.card .label{display:flex;justify-content:space-between;align-items:center;font-size:13px;margin-top:3px}
.card .noimg{height:80px;display:flex;align-items:center;justify-content:center;color:#5a6475;background:#eceef2}
.zoom{padding:1px 6px;font-size:12px}dialog img{max-width:90vw;max-height:80vh;display:block}
@media (max-width:800px){main{grid-template-columns:1fr}#pool{position:static;max-height:none}}
"""

_JS = r"""
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

  function render() {
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
    save();
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
  function restore() {
    try {
      const s = JSON.parse(localStorage.getItem(STORE) || "null");
      if (!s || !Array.isArray(s.tiers) || !Array.isArray(s.pool)) return;
      const ids = s.tiers.flat().concat(s.pool).map(Number).sort(byNum);
      if (ids.join() !== ALL.slice().sort(byNum).join()) return;
      state = { tiers: s.tiers.length ? s.tiers : [[]], pool: s.pool };
      nameBox.value = s.name || "";
    } catch (e) { /* a damaged saved state: start fresh */ }
  }

  DATA.clusters.forEach((c) => cards.set(c.id, buildCard(c)));
  restore();
  $("export").addEventListener("click", exportPog);
  $("load").addEventListener("click", loadLine);
  $("add-tier").addEventListener("click", () => { state.tiers.push([]); render(); });
  $("add-tier-top").addEventListener("click", () => { state.tiers.unshift([]); render(); });
  $("reset").addEventListener("click", () => {
    if (!confirm("Clear the whole ranking?")) return;
    state = { tiers: [[], []], pool: ALL.slice() }; selected.clear(); render(); say("Cleared.");
  });
  nameBox.addEventListener("input", save);
  render();
  document.body.dataset.ready = "true";
})();
"""
