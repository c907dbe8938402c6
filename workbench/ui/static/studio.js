// Step1X-Edit Studio page script (injected once through launch(head=...)).
// 1. Keyboard shortcuts: one document-level listener; keys act on the visible tab only and never while the
//    user types in a field. Each shortcut clicks an element with a stable elem_id, so the Python handler runs
//    exactly as for a mouse click.
// 2. Compare viewer: synchronized zoom/pan across every pane of a .sx-viewer (wheel and drag, or pinch and
//    one-finger pan on touch screens), plus flicker and difference modes. Gradio re-renders gr.HTML on each
//    update, so all listeners are delegated from the document.
// 3. Fit: on a laptop screen the Rate and Curate viewers take the height the answer controls leave over, so
//    images and controls are visible together without scrolling (phones stack the images instead, in CSS).
// 4. The selected tab lives in the URL hash (#rate): Back and Forward move between tabs inside the app, and a
//    reload or a shared link opens the same tab.
(function () {
  if (window.__studioLoaded) return;
  window.__studioLoaded = true;

  const RATE_KEYS = {
    "1": "#rate-choice input[value='A']",
    "2": "#rate-choice input[value='B']",
    "3": "#rate-choice input[value='tie']",
    "4": "#rate-choice input[value='both_bad']",
    Enter: "#rate-submit",
    u: "#rate-undo",
    s: "#rate-skip",
    f: ".sx-viewer [data-sx-mode='flicker']",
    d: ".sx-viewer [data-sx-mode='diff']",
    "0": ".sx-viewer [data-sx-action='reset']",
  };
  const CURATE_KEYS = {
    a: "#curate-accept",
    r: "#curate-reject",
    f: "#curate-flag",
    u: "#curate-undo",
  };

  function visible(el) {
    return !!el && el.offsetParent !== null;
  }
  function typing(target) {
    if (!target) return false;
    const tag = (target.tagName || "").toLowerCase();
    if (tag === "textarea" || tag === "select" || target.isContentEditable) return true;
    if (tag !== "input") return false;
    const type = (target.type || "").toLowerCase();
    return !["radio", "checkbox", "button", "range"].includes(type);
  }
  function clickFirstVisible(root, selector) {
    for (const el of root.querySelectorAll(selector)) {
      if (visible(el) || el.type === "radio") {
        if (el.disabled) return false;
        el.click();
        return true;
      }
    }
    return false;
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) return;
    const key = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
    const rate = document.getElementById("rate-panel");
    const curate = document.getElementById("curate-panel");
    let map = null;
    let root = null;
    if (visible(rate)) {
      map = RATE_KEYS;
      root = rate;
    } else if (visible(curate)) {
      map = CURATE_KEYS;
      root = curate;
    }
    if (!map || !(key in map)) return;
    if (clickFirstVisible(root, map[key])) ev.preventDefault();
  });

  // ---- compare viewer -------------------------------------------------------------------------
  function viewerOf(el) {
    return el && el.closest ? el.closest(".sx-viewer") : null;
  }
  function view(v) {
    return {
      s: parseFloat(v.dataset.scale || "1"),
      x: parseFloat(v.dataset.tx || "0"),
      y: parseFloat(v.dataset.ty || "0"),
    };
  }
  function apply(v, t) {
    v.dataset.scale = t.s;
    v.dataset.tx = t.x;
    v.dataset.ty = t.y;
    for (const layer of v.querySelectorAll(".sx-layer")) {
      layer.style.transform = "translate(" + t.x + "px," + t.y + "px) scale(" + t.s + ")";
    }
    const z = v.querySelector(".sx-zoom");
    if (z) z.textContent = Math.round(t.s * 100) + "%";
    // Zoomed in, a one-finger drag pans the images instead of scrolling the page (see studio.css).
    v.toggleAttribute("data-zoomed", t.s > 1);
  }
  // Zoom to scale s (clamped to 1-32x) so that the image point under `from` (frame coordinates, at the view
  // t) ends up under `to`: wheel, pinch and pan are all this one move.
  function zoomAt(v, t, s, from, to) {
    s = Math.min(32, Math.max(1, s));
    const k = s / t.s;
    apply(v, { s: s, x: to.x - (from.x - t.x) * k, y: to.y - (from.y - t.y) * k });
  }

  document.addEventListener(
    "wheel",
    function (ev) {
      const frame = ev.target.closest && ev.target.closest(".sx-frame");
      const v = viewerOf(frame);
      if (!v) return;
      ev.preventDefault();
      const t = view(v);
      const r = frame.getBoundingClientRect();
      const p = { x: ev.clientX - r.left, y: ev.clientY - r.top };
      // Keep the point under the cursor fixed, in every pane at once.
      zoomAt(v, t, t.s * (ev.deltaY < 0 ? 1.25 : 0.8), p, p);
    },
    { passive: false }
  );

  let drag = null;
  document.addEventListener("mousedown", function (ev) {
    const frame = ev.target.closest && ev.target.closest(".sx-frame");
    const v = viewerOf(frame);
    if (!v || ev.button !== 0) return;
    ev.preventDefault();
    drag = { v: v, x0: ev.clientX, y0: ev.clientY, t: view(v) };
  });
  document.addEventListener("mousemove", function (ev) {
    if (!drag) return;
    apply(drag.v, { s: drag.t.s, x: drag.t.x + ev.clientX - drag.x0, y: drag.t.y + ev.clientY - drag.y0 });
  });
  document.addEventListener("mouseup", function () {
    drag = null;
  });

  // Touch: two fingers pinch-zoom around their midpoint and pan with it; one finger pans once zoomed in (at
  // 100% it scrolls the page as usual). Every pane follows, as with the mouse.
  let touch = null;
  function fingers(ev, frame) {
    const r = frame.getBoundingClientRect();
    return Array.from(ev.touches).slice(0, 2).map(function (f) {
      return { x: f.clientX - r.left, y: f.clientY - r.top };
    });
  }
  function gesture(v, frame, pts) {
    const two = pts.length > 1;
    const mid = two ? { x: (pts[0].x + pts[1].x) / 2, y: (pts[0].y + pts[1].y) / 2 } : pts[0];
    const dist = two ? Math.hypot(pts[0].x - pts[1].x, pts[0].y - pts[1].y) : 0;
    return { v: v, frame: frame, t: view(v), mid: mid, dist: dist };
  }
  document.addEventListener(
    "touchstart",
    function (ev) {
      const frame = ev.target.closest && ev.target.closest(".sx-frame");
      const v = viewerOf(frame);
      if (!v) return;
      if (ev.touches.length < 2 && view(v).s <= 1) {
        touch = null;
        return;
      }
      ev.preventDefault();
      touch = gesture(v, frame, fingers(ev, frame));
    },
    { passive: false }
  );
  document.addEventListener(
    "touchmove",
    function (ev) {
      if (!touch) return;
      ev.preventDefault();
      const now = gesture(touch.v, touch.frame, fingers(ev, touch.frame));
      const s = touch.dist > 0 && now.dist > 0 ? (touch.t.s * now.dist) / touch.dist : touch.t.s;
      zoomAt(touch.v, touch.t, s, touch.mid, now.mid);
    },
    { passive: false }
  );
  function touchEnd(ev) {
    if (!touch) return;
    // A finger lifted off a pinch: carry on as a one-finger pan from here.
    touch = ev.touches.length ? gesture(touch.v, touch.frame, fingers(ev, touch.frame)) : null;
  }
  document.addEventListener("touchend", touchEnd);
  document.addEventListener("touchcancel", touchEnd);

  function loaded(img) {
    return new Promise(function (resolve, reject) {
      if (img.complete && img.naturalWidth) return resolve(img);
      img.addEventListener("load", function () { resolve(img); }, { once: true });
      img.addEventListener("error", reject, { once: true });
    });
  }

  // |output - source| per channel, amplified, drawn at the source's native size.
  async function drawDifference(v) {
    const src = v.querySelector(".sx-pane[data-role='source'] img.sx-main");
    if (!src) return;
    await loaded(src);
    const w = src.naturalWidth;
    const h = src.naturalHeight;
    const base = document.createElement("canvas");
    base.width = w;
    base.height = h;
    const bctx = base.getContext("2d");
    bctx.drawImage(src, 0, 0, w, h);
    const a = bctx.getImageData(0, 0, w, h).data;
    for (const pane of v.querySelectorAll(".sx-pane[data-role='output']")) {
      const img = pane.querySelector("img.sx-main");
      const canvas = pane.querySelector("canvas.sx-diff");
      await loaded(img);
      canvas.width = w;
      canvas.height = h;
      const ctx = canvas.getContext("2d");
      ctx.drawImage(img, 0, 0, w, h);
      const out = ctx.getImageData(0, 0, w, h);
      const b = out.data;
      let changed = 0;
      for (let i = 0; i < b.length; i += 4) {
        const d = (Math.abs(b[i] - a[i]) + Math.abs(b[i + 1] - a[i + 1]) + Math.abs(b[i + 2] - a[i + 2])) / 3;
        if (d > 12) changed++;
        const g = Math.min(255, d * 4);
        b[i] = g;
        b[i + 1] = g;
        b[i + 2] = g;
        b[i + 3] = 255;
      }
      ctx.putImageData(out, 0, 0);
      const note = pane.querySelector(".sx-note");
      if (note) {
        const pct = (100 * changed) / (w * h);
        note.textContent = pct < 0.5 ? "almost no change vs source (" + pct.toFixed(1) + "%)" : pct.toFixed(1) + "% of pixels changed";
      }
    }
  }

  function setMode(v, mode) {
    if (v.__flicker) {
      clearInterval(v.__flicker);
      v.__flicker = null;
    }
    const same = v.dataset.mode === mode;
    mode = same ? "side" : mode; // pressing an active mode again turns it off
    v.dataset.mode = mode;
    v.classList.remove("sx-show-source");
    for (const b of v.querySelectorAll("[data-sx-mode]")) {
      b.classList.toggle("sx-active", b.dataset.sxMode === mode);
    }
    if (mode === "flicker") {
      v.__flicker = setInterval(function () {
        if (!document.body.contains(v)) return clearInterval(v.__flicker);
        v.classList.toggle("sx-show-source");
      }, 500);
    } else if (mode === "diff") {
      drawDifference(v).catch(function (e) { console.warn("difference view unavailable", e); });
    }
  }

  document.addEventListener("click", function (ev) {
    const btn = ev.target.closest && ev.target.closest("[data-sx-mode], [data-sx-action]");
    const v = viewerOf(btn);
    if (!v) return;
    ev.preventDefault();
    if (btn.dataset.sxAction === "reset") apply(v, { s: 1, x: 0, y: 0 });
    else setMode(v, btn.dataset.sxMode);
  });

  // ---- fit the viewer to the screen ------------------------------------------------------------
  const FIT_UNTIL = { "rate-viewer": "rate-actions", "curate-viewer": "curate-actions" };
  const PHONE = window.matchMedia("(max-width: 640px)");
  const FIT_MIN_PX = 160;
  const FIT_MARGIN_PX = 12;

  // The frames' height cap (--sx-fit-h): the window height minus everything from the page top to the frames
  // and from the frames to the bottom of the answer controls. Frames keep their aspect ratio under the cap.
  function fit(host) {
    const v = host.querySelector(".sx-viewer");
    const until = document.getElementById(FIT_UNTIL[host.id]);
    const frame = v && v.querySelector(".sx-frame");
    if (!frame || !until || !visible(v)) return;
    if (PHONE.matches) {
      v.style.removeProperty("--sx-fit-h");
      return;
    }
    const f = frame.getBoundingClientRect();
    const rest = until.getBoundingClientRect().bottom - f.bottom;
    const h = Math.max(FIT_MIN_PX, Math.floor(window.innerHeight - FIT_MARGIN_PX - (f.top + window.scrollY) - rest));
    const old = parseFloat(v.style.getPropertyValue("--sx-fit-h")) || 0;
    if (Math.abs(old - h) > 1) v.style.setProperty("--sx-fit-h", h + "px");
  }
  let fitQueued = false;
  function scheduleFit() {
    if (fitQueued) return;
    fitQueued = true;
    requestAnimationFrame(function () {
      fitQueued = false;
      for (const id in FIT_UNTIL) {
        const host = document.getElementById(id);
        if (host) fit(host);
      }
      syncHash();
    });
  }
  window.addEventListener("resize", scheduleFit);

  // ---- the selected tab in the URL hash --------------------------------------------------------
  // The app's own tabs only (#studio-tabs), not tabs nested inside a tab.
  function appTabs() {
    const root = document.getElementById("studio-tabs");
    return Array.from(document.querySelectorAll("button[role='tab'][data-tab-id]")).filter(function (b) {
      return root && b.closest(".tabs") === root;
    });
  }
  let hashRestored = false;
  function tabButton(id) {
    return appTabs().find(function (b) { return b.dataset.tabId === id; });
  }
  function showTab(id) {
    const b = tabButton(id);
    if (b && b.getAttribute("aria-selected") !== "true") b.click();
    return !!b;
  }
  function syncHash() {
    const selected = appTabs().find(function (b) { return b.getAttribute("aria-selected") === "true"; });
    if (!selected) return;
    const want = decodeURIComponent(location.hash.slice(1));
    if (!hashRestored) {
      hashRestored = true; // first render: the URL says which tab to open (reload, link, Back into the app)
      if (want && want !== selected.dataset.tabId && showTab(want)) return;
    }
    const hash = "#" + selected.dataset.tabId;
    if (location.hash === hash) return;
    // A new history entry per tab switch, so Back returns to the previous tab; the first one replaces "no hash".
    // The full path keeps the query (a rater link's parameters): the page's <base> would resolve "#x" alone.
    const url = location.pathname + location.search + hash;
    if (location.hash) history.pushState(null, "", url);
    else history.replaceState(null, "", url);
  }
  window.addEventListener("popstate", function () {
    const first = appTabs()[0];
    showTab(decodeURIComponent(location.hash.slice(1)) || (first && first.dataset.tabId));
  });

  // Gradio renders and updates the page asynchronously: refit and resync after each change outside the viewers
  // (zooming, flicker and the fit itself only touch a viewer's own subtree).
  new MutationObserver(function (records) {
    for (const r of records) {
      const el = r.target.nodeType === 1 ? r.target : r.target.parentElement;
      if (!(el && el.closest && el.closest(".sx-viewer"))) return scheduleFit();
    }
  }).observe(document.documentElement, {
    childList: true,
    subtree: true,
    characterData: true,
    attributes: true,
    attributeFilter: ["style", "class", "open", "aria-selected", "hidden"],
  });
})();
