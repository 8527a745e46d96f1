/* searchd search page. Plain JS, no build step; talks only to the public JSON API.
 *
 * The address bar is the source of truth for a search (?q=&mode=, ?similar=ID&mode=, optional &k=,
 * &weak=1 and &collapse=0), so reload, bookmarks and back/forward reproduce it. Uploaded images cannot live in a URL: they are
 * kept in memory for the session and found again through history.state on back/forward.
 *
 * Every word the page shows comes from i18n.js (window.searchdI18n) through t(); the language is
 * the switch's choice (localStorage), else the browser's, and can change without a reload.
 */
(() => {
  "use strict";

  const TEXT_MODES = ["text-image", "text-text", "text-all"];
  const IMAGE_MODES = ["image-image", "image-text", "image-all"];
  const KIND_OF_MODE = { image: 0, text: 1, all: 2 };
  const PAGE_SIZE = 24;
  const MAX_K = 200;
  const DEBOUNCE_MS = 300;
  const EMPTY_INDEX_POLL_MS = 4000;
  const API_KEY_STORAGE = "searchd.apiKey";
  const STOP_WORDS = new Set("a an the of to in on and or is are was be for with by at as it this that what how".split(" "));

  const I18N = window.searchdI18n;
  let L = I18N.create(I18N.pickLang());
  const t = (key, values) => L.t(key, values);

  const $ = (id) => document.getElementById(id);
  const body = document.body;
  const config = {
    llmEnabled: body.dataset.llmEnabled === "true",
    apiKeyRequired: body.dataset.apiKeyRequired === "true",
    maxUploadMb: parseFloat(body.dataset.maxUploadMb) || 20,
  };

  const el = {
    form: $("search-form"), input: $("q"), uploadInput: $("upload-input"), uploadButton: $("upload-button"),
    chip: $("query-chip"), chipImg: $("query-chip-img"), chipLabel: $("query-chip-label"), chipClear: $("query-chip-clear"),
    modes: $("modes"), summary: $("summary"), state: $("state"), results: $("results"),
    loadMore: $("load-more"), moreError: $("more-error"), progress: $("progress"), footerCounts: $("footer-counts"),
    dropzone: $("dropzone"),
    answer: $("answer-panel"), answerBody: $("answer-body"), answerMeta: $("answer-meta"), answerError: $("answer-error"),
    answerCitations: $("answer-citations"), answerAsk: $("answer-ask"), answerStop: $("answer-stop"),
    preview: $("preview"), previewTitle: $("preview-title"), previewMedia: $("preview-media"), previewMeta: $("preview-meta"),
    previewError: $("preview-error"), previewPrev: $("preview-prev"), previewNext: $("preview-next"),
    previewClose: $("preview-close"), findSimilar: $("find-similar"), openOriginal: $("open-original"),
    notice: $("notice"), showWeak: $("show-weak"), collapse: $("collapse"), collapseSwitch: $("collapse-switch"),
    lang: document.querySelector(".lang"),
  };

  const state = {
    query: null,            // {type:"text", q} | {type:"image", file, url, name, uploadId} | {type:"similar", itemId, item}
    textMode: "text-all",
    imageMode: "image-image",
    k: PAGE_SIZE,
    kInUrl: false,
    weak: false,            // also show hits below the relevance floor (?weak=1); reset by a new query
    collapse: true,         // fold near-duplicate images into one hit (?collapse=0 turns it off)
    hits: [],
    nextOffset: null,
    lastData: null,         // the first page's response, to redraw in another language
    redraw: null,           // redraws the state panel (idle, errors...) in another language
    seq: 0,
    controller: null,
    lastKey: "",
    status: null,
    roots: [],
    previewIndex: -1,
    previewHit: null,
    emptyPoll: null,
  };
  const uploads = new Map();  // uploadId -> File, so back/forward can find an image search again
  let uploadCounter = 0;
  let debounceTimer = null;

  // ---------------------------------------------------------------- API ----------

  class ApiError extends Error {
    constructor(message, status, network = false) {
      super(message);
      this.status = status;
      this.network = network;
    }
  }

  function apiKey() {
    try { return localStorage.getItem(API_KEY_STORAGE) || ""; } catch { return ""; }
  }

  function authHeaders() {
    const key = apiKey();
    return key ? { "X-API-Key": key } : {};
  }

  /** URLs put in <img src>/<a href> cannot carry headers; the API also accepts ?api_key=. */
  function withKey(url) {
    const key = apiKey();
    if (!url || !key) return url;
    return url + (url.includes("?") ? "&" : "?") + "api_key=" + encodeURIComponent(key);
  }

  async function api(path, { method = "GET", body: payload, signal, headers = {} } = {}) {
    let response;
    try {
      response = await fetch(path, { method, body: payload, signal, headers: { Accept: "application/json", ...authHeaders(), ...headers } });
    } catch (err) {
      if (err && err.name === "AbortError") throw err;
      throw new ApiError(t("error.unreachable"), 0, true);
    }
    let data = null;
    try { data = await response.json(); } catch { data = null; }
    if (!response.ok) {
      const message = (data && data.error) || t("error.status", { status: `${response.status} ${response.statusText}`.trim() });
      throw new ApiError(message, response.status);
    }
    return data;
  }

  // ---------------------------------------------------------------- helpers ------

  function h(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const ICONS = {
    search: '<circle cx="10.5" cy="10.5" r="6.5"/><path d="M15.5 15.5 21 21"/>',
    folder: '<path d="M3 7.5A2.5 2.5 0 0 1 5.5 5H9l2 2.5h7.5A2.5 2.5 0 0 1 21 10v6.5a2.5 2.5 0 0 1-2.5 2.5h-13A2.5 2.5 0 0 1 3 16.5z"/>',
    empty: '<circle cx="11" cy="11" r="6.5"/><path d="M16 16l5 5M8.5 11h5"/>',
    offline: '<path d="M2 8.5a15 15 0 0 1 20 0M5.5 12a10 10 0 0 1 13 0M9 15.5a5 5 0 0 1 6 0"/><path d="M3 3l18 18"/>',
    alert: '<path d="M12 3 2.5 20h19z"/><path d="M12 10v4.5M12 17.5v.01"/>',
    image: '<rect x="3" y="5" width="18" height="14" rx="2.5"/><circle cx="9" cy="10" r="1.8"/><path d="m4 17 5-4.5 4 3.5 3-2.5 4 3.5"/>',
    key: '<circle cx="8" cy="15" r="4"/><path d="m11 12 9-9M16 7l3 3"/>',
  };

  function icon(name) {
    const wrap = h("div", { class: "state__icon", "aria-hidden": "true" });
    wrap.innerHTML = `<svg viewBox="0 0 24 24">${ICONS[name]}</svg>`;  // constant markup, never data
    return wrap;
  }

  function basename(path) {
    const parts = String(path || "").split(/[\\/]/);
    return parts[parts.length - 1] || path;
  }

  function extension(path) {
    const name = basename(path);
    const dot = name.lastIndexOf(".");
    return dot > 0 ? name.slice(dot + 1).toLowerCase() : "";
  }

  /** Show a path relative to the indexed root it lives under (keeping the root's own name). */
  function displayPath(path) {
    for (const root of state.roots) {
      const prefix = root.endsWith("/") ? root : root + "/";
      if (path.startsWith(prefix)) return basename(root) + "/" + path.slice(prefix.length);
    }
    return path;
  }

  const humanSize = (bytes) => L.size(bytes);
  const humanDate = (iso) => L.date(iso);

  function formatGps(gps) {
    if (gps === null || gps === undefined) return "";
    let lat; let lon;
    if (Array.isArray(gps)) [lat, lon] = gps;
    else if (typeof gps === "object") { lat = gps.lat ?? gps.latitude; lon = gps.lon ?? gps.lng ?? gps.longitude; }
    if (typeof lat === "number" && typeof lon === "number") {
      return t("gps", { lat: Math.abs(lat).toFixed(5), lon: Math.abs(lon).toFixed(5), north: lat >= 0, east: lon >= 0 });
    }
    return typeof gps === "object" ? JSON.stringify(gps) : String(gps);
  }

  /** A relevance in [0, 1] (older servers sent a raw cosine: clamped the same way). */
  function relevance(score) {
    return typeof score === "number" && Number.isFinite(score) ? Math.min(1, Math.max(0, score)) : null;
  }

  const ENTITIES = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: "\u00a0" };
  function decodeEntities(text) {
    return text.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (match, code) => {
      if (code[0] === "#") {
        const n = code[1].toLowerCase() === "x" ? parseInt(code.slice(2), 16) : parseInt(code.slice(1), 10);
        return Number.isFinite(n) && n > 0 && n <= 0x10ffff ? String.fromCodePoint(n) : match;
      }
      return ENTITIES[code.toLowerCase()] ?? match;
    });
  }

  /** The snippet is escaped text with <mark> around matches. It is never parsed as HTML: only the
   *  exact <mark>/</mark> tokens become elements, everything else is decoded into text nodes. */
  function snippetNodes(snippet) {
    const fragment = document.createDocumentFragment();
    const parts = String(snippet || "").split(/(<\/?mark>)/i);
    let open = false;
    let atLineStart = true;
    let lastMark = null;  // "<mark>注意</mark><mark>力</mark>" reads as one mark
    for (const part of parts) {
      if (/^<mark>$/i.test(part)) { open = true; continue; }
      if (/^<\/mark>$/i.test(part)) { open = false; continue; }
      if (!part) continue;
      let text = decodeEntities(part);
      // Markdown heading markers are noise in a two-line excerpt.
      text = text.replace(/(^|\n)#{1,6}[ \t]+/g, (m, lead, offset) => (offset === 0 && !atLineStart ? m : lead));
      atLineStart = text.endsWith("\n");
      if (open && lastMark) {
        lastMark.append(text);
      } else if (open) {
        lastMark = h("mark", {}, text);
        fragment.append(lastMark);
      } else {
        lastMark = null;
        fragment.append(document.createTextNode(text));
      }
    }
    return fragment;
  }

  function queryTerms(text) {
    return Array.from(new Set((String(text || "").toLowerCase().match(/[\p{L}\p{N}]+/gu) || [])
      .filter((t) => (t.length > 1 || /\d/.test(t)) && !STOP_WORDS.has(t))));
  }

  /** Text with whole-word query terms wrapped in <mark>, as DOM nodes. */
  function highlighted(text, terms) {
    const fragment = document.createDocumentFragment();
    if (!terms.length) { fragment.append(text); return fragment; }
    // Chinese is written without spaces: a Han term matches anywhere, other terms as whole words.
    const escaped = terms.sort((a, b) => b.length - a.length).map((term) => {
      const plain = term.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      return /\p{Script=Han}/u.test(term) ? plain : `(?<![\\p{L}\\p{N}])${plain}(?![\\p{L}\\p{N}])`;
    });
    const pattern = new RegExp(`(${escaped.join("|")})`, "giu");
    let last = 0;
    for (const match of text.matchAll(pattern)) {
      fragment.append(text.slice(last, match.index), h("mark", {}, match[0]));
      last = match.index + match[0].length;
    }
    fragment.append(text.slice(last));
    return fragment;
  }

  function setBusy(busy) {
    el.progress.hidden = !busy;
    el.results.setAttribute("aria-busy", busy ? "true" : "false");
  }

  function currentMode() {
    return state.query && state.query.type !== "text" ? state.imageMode : state.textMode;
  }

  // ---------------------------------------------------------------- URL ----------

  function urlFor(query) {
    const params = new URLSearchParams();
    if (query && query.type === "text") {
      params.set("q", query.q);
      params.set("mode", state.textMode);
    } else if (query && query.type === "similar") {
      params.set("similar", String(query.itemId));
      params.set("mode", state.imageMode);
    } else if (query && query.type === "image") {
      params.set("mode", state.imageMode);
    }
    if (state.kInUrl) params.set("k", String(state.k));
    if (query && state.weak) params.set("weak", "1");
    if (!state.collapse) params.set("collapse", "0");
    const search = params.toString();
    return location.pathname + (search ? "?" + search : "");
  }

  function historyState(query, typed) {
    return {
      searchd: true,
      typed: Boolean(typed),
      upload: query && query.type === "image" ? query.uploadId : null,
      textMode: state.textMode,
      imageMode: state.imageMode,
    };
  }

  /** Record the current search in the address bar. While typing, one history entry is kept up to
   *  date instead of one per keystroke. */
  function recordHistory(how) {
    const url = urlFor(state.query);
    const typed = how === "typed";
    const current = history.state;
    const sameEntry = url === location.pathname + location.search;
    if (how === "replace" || (typed && current && current.typed) || (how === "commit" && current && current.typed)) {
      history.replaceState(historyState(state.query, typed), "", url);
    } else if (!sameEntry || !current || !current.searchd) {
      history.pushState(historyState(state.query, typed), "", url);
    }
    updateTitle();
  }

  function updateTitle() {
    const q = state.query;
    if (!q) document.title = "searchd";
    else if (q.type === "text") document.title = `${q.q} — searchd`;
    else if (q.type === "similar") document.title = `${t("search.similarTo", { name: q.item ? basename(q.item.path) : "#" + q.itemId })} — searchd`;
    else document.title = `${q.name || t("search.image")} — searchd`;
  }

  /** Read the address bar (and history.state) into the page's state, then search. */
  function applyLocation(hstate) {
    const params = new URLSearchParams(location.search);
    const mode = params.get("mode") || "";
    const k = parseInt(params.get("k") || "", 10);
    state.kInUrl = Number.isFinite(k);
    state.k = state.kInUrl ? Math.min(Math.max(k, 1), MAX_K) : PAGE_SIZE;
    if (hstate && hstate.textMode) state.textMode = hstate.textMode;
    if (hstate && hstate.imageMode) state.imageMode = hstate.imageMode;
    if (TEXT_MODES.includes(mode)) state.textMode = mode;
    if (IMAGE_MODES.includes(mode)) state.imageMode = mode;
    state.collapse = params.get("collapse") !== "0";
    el.collapse.checked = state.collapse;

    const q = (params.get("q") || "").trim();
    const similar = parseInt(params.get("similar") || "", 10);
    const upload = hstate && hstate.upload ? uploads.get(hstate.upload) : null;
    clearTimeout(debounceTimer);
    if (Number.isFinite(similar) && similar > 0) {
      setQuery({ type: "similar", itemId: similar, item: null });
    } else if (q) {
      setQuery({ type: "text", q });
    } else if (upload) {
      setQuery({ type: "image", ...upload });
    } else {
      setQuery(null);
      showIdle(IMAGE_MODES.includes(mode));
      return;
    }
    state.weak = ["1", "true"].includes(params.get("weak"));  // after setQuery, which resets it
    search({ committed: true, force: true });
  }

  // ---------------------------------------------------------------- query UI -----

  function setQuery(query) {
    if (queryIdentity(query) !== queryIdentity(state.query)) state.weak = false;  // weaker matches were asked for one query
    state.query = query;
    const imageLike = query && query.type !== "text";
    if (!query || query.type === "text") {
      const text = query ? query.q : "";
      if (el.input.value.trim() !== text) el.input.value = text;
      el.chip.hidden = true;
      el.chipImg.removeAttribute("src");
    } else {
      el.input.value = "";
      el.chip.hidden = false;
      el.chipImg.hidden = false;
      if (query.type === "image") {
        el.chipImg.src = query.url;
        el.chipImg.alt = "";
      } else {
        el.chipImg.removeAttribute("src");
        el.chipImg.hidden = true;
        if (query.item && query.item.thumbnail_url) showChipThumb(query.item.thumbnail_url);
        else if (!query.item) loadSimilarSource(query);
      }
      renderChipLabel();
    }
    renderPlaceholder();
    renderModes();
    updateTitle();
  }

  function queryIdentity(query) {
    if (!query) return "";
    return `${query.type}|${query.type === "text" ? query.q : query.type === "similar" ? query.itemId : query.uploadId}`;
  }

  function renderChipLabel() {
    const query = state.query;
    if (!query || query.type === "text") return;
    if (query.type === "image") el.chipLabel.textContent = query.name || t("search.pasted");
    else el.chipLabel.textContent = query.item ? t("search.similarTo", { name: basename(query.item.path) })
      : t("search.similarToItem", { id: query.itemId });
  }

  function renderPlaceholder() {
    const imageLike = state.query && state.query.type !== "text";
    const narrow = window.matchMedia("(max-width: 520px)").matches;
    el.input.placeholder = imageLike ? t(narrow ? "search.placeholderImageShort" : "search.placeholderImage")
      : t(narrow ? "search.placeholderShort" : "search.placeholder");
  }

  function showChipThumb(url) {
    el.chipImg.hidden = false;
    el.chipImg.src = withKey(url);
  }

  async function loadSimilarSource(query) {
    try {
      const item = await api(`/api/items/${query.itemId}`);
      if (state.query !== query) return;
      query.item = item;
      renderChipLabel();
      if (item.thumbnail_url) showChipThumb(item.thumbnail_url);
      updateTitle();
    } catch { /* the search itself reports a missing item */ }
  }

  function renderModes() {
    const imageLike = state.query && state.query.type !== "text";
    const modes = imageLike ? IMAGE_MODES : TEXT_MODES;
    const active = imageLike ? state.imageMode : state.textMode;
    el.modes.setAttribute("aria-label", t(imageLike ? "modes.labelImage" : "modes.label"));
    for (const button of el.modes.querySelectorAll(".mode")) {
      const mode = modes[KIND_OF_MODE[button.dataset.modeKind]];
      button.dataset.mode = mode;
      const checked = mode === active;
      button.setAttribute("aria-checked", checked ? "true" : "false");
      button.tabIndex = checked ? 0 : -1;
      const kind = button.dataset.modeKind;
      button.querySelector("span").textContent = t(imageLike ? `mode.${kind}.forImage` : `mode.${kind}`);
    }
    // Duplicates are folded among images only: the switch is shown where images can come back.
    el.collapseSwitch.hidden = active.endsWith("-text");
  }

  function chooseMode(mode) {
    if (TEXT_MODES.includes(mode)) state.textMode = mode;
    else state.imageMode = mode;
    renderModes();
    if (state.query) {
      search({ committed: true, force: true, history: "push" });
    } else {
      recordModeOnly();
    }
  }

  function recordModeOnly() {
    const params = new URLSearchParams(location.search);
    params.set("mode", state.textMode);
    if (state.collapse) params.delete("collapse"); else params.set("collapse", "0");
    history.replaceState(historyState(null, false), "", location.pathname + "?" + params.toString());
  }

  // ---------------------------------------------------------------- searching ----

  function searchRequest(query, offset, signal) {
    const params = new URLSearchParams({ mode: currentMode(), k: String(state.k), offset: String(offset) });
    if (state.weak) params.set("weak", "1");  // only what differs from the API's defaults
    if (!state.collapse) params.set("collapse", "0");
    if (query.type === "text") {
      params.set("q", query.q);
      return api(`/api/search?${params}`, { signal });
    }
    if (query.type === "similar") return api(`/api/items/${query.itemId}/similar?${params}`, { signal });
    const form = new FormData();
    form.append("file", query.file, query.name || "image");
    return api(`/api/search/image?${params}`, { method: "POST", body: form, signal });
  }

  function queryKey(query) {
    if (!query) return "";
    return `${queryIdentity(query)}|${currentMode()}|${state.k}|${state.weak ? 1 : 0}|${state.collapse ? 1 : 0}`;
  }

  /**
   * Run the current query. history: "typed" (debounced typing), "commit" (Enter), "push" (a new
   * search), "none" (back/forward or first load: the address bar already says it).
   */
  async function search({ committed = false, force = false, history: how = "none" } = {}) {
    const query = state.query;
    if (!query) return;
    const key = queryKey(query);
    if (how !== "none") recordHistory(how);
    if (committed) maybeAnswer(true);
    else maybeAnswer(false);
    if (!force && key === state.lastKey) return;
    state.lastKey = key;
    if (state.controller) state.controller.abort();
    const controller = new AbortController();
    state.controller = controller;
    const seq = ++state.seq;
    stopEmptyPoll();
    setBusy(true);
    el.moreError.hidden = true;
    try {
      const data = await searchRequest(query, 0, controller.signal);
      if (seq !== state.seq) return;
      state.hits = (data && data.hits) || [];
      state.nextOffset = (data && data.next_offset) ?? null;
      state.lastData = data;
      renderResults(false, data);
    } catch (err) {
      if (err && err.name === "AbortError") return;
      if (seq !== state.seq) return;
      state.lastKey = "";  // let the same search run again after an error
      state.hits = [];
      state.nextOffset = null;
      state.lastData = null;
      clearResults();
      showError(err, query);
    } finally {
      if (seq === state.seq) setBusy(false);
    }
  }

  async function loadMore() {
    const query = state.query;
    if (!query || state.nextOffset === null) return;
    const seq = state.seq;  // a new search makes this page stale
    el.loadMore.disabled = true;
    el.loadMore.textContent = t("results.loading");
    el.moreError.hidden = true;
    setBusy(true);
    try {
      const data = await searchRequest(query, state.nextOffset, state.controller ? state.controller.signal : undefined);
      if (seq !== state.seq) return;
      const seen = new Set(state.hits.map((hit) => hit.id));
      const fresh = (data.hits || []).filter((hit) => !seen.has(hit.id));
      const firstNew = state.hits.length;
      state.hits = state.hits.concat(fresh);
      state.nextOffset = data.next_offset ?? null;
      renderResults(true, data, fresh);
      const card = el.results.children[firstNew];
      if (card) card.querySelector(".card__open").focus({ preventScroll: true });
    } catch (err) {
      if (err && err.name === "AbortError") return;
      if (seq !== state.seq) return;
      el.moreError.textContent = err.network ? t("results.moreUnreachable") : t("results.moreFailed", { message: err.message });
      el.moreError.hidden = false;
    } finally {
      if (seq === state.seq) setBusy(false);
      el.loadMore.disabled = false;
      el.loadMore.textContent = t("results.loadMore");
    }
  }

  // ---------------------------------------------------------------- results ------

  function clearResults() {
    el.results.replaceChildren();
    delete el.results.dataset.mode;
    el.loadMore.hidden = true;
    el.showWeak.hidden = true;
    el.notice.hidden = true;
    el.summary.textContent = "";
  }

  function renderResults(append, data, fresh) {
    const mode = currentMode();
    el.results.classList.toggle("grid--text", mode.endsWith("-text"));
    el.results.dataset.mode = mode;  // a stable hook: which search the shown cards belong to
    if (!append) {
      el.state.replaceChildren();
      el.state.className = "state";
      state.redraw = null;
      el.results.replaceChildren();
    }
    const hits = append ? fresh : state.hits;
    const start = append ? state.hits.length - fresh.length : 0;
    const fragment = document.createDocumentFragment();
    hits.forEach((hit, i) => fragment.append(renderCard(hit, start + i)));
    el.results.append(fragment);
    el.loadMore.hidden = state.nextOffset === null;

    // Fields of the relevance floor; an older server sends none of them.
    const first = state.lastData || {};
    const weakHidden = Number.isInteger(first.weak_hidden) && first.weak_hidden > 0 ? first.weak_hidden : 0;
    const notice = typeof first.notice === "string" && first.notice ? first.notice : null;
    el.notice.hidden = !notice;
    el.notice.textContent = notice ? L.notice(notice) : "";
    if (notice && L.notice(notice) === notice) el.notice.lang = "en";  // the server writes in English
    else el.notice.removeAttribute("lang");
    if (weakHidden > 0) {
      el.showWeak.textContent = t("results.showWeak", { count: weakHidden });
      el.showWeak.dataset.action = "show";
    } else if (state.weak && state.hits.some((hit) => hit.weak)) {
      el.showWeak.textContent = t("results.hideWeak");
      el.showWeak.dataset.action = "hide";
    }
    el.showWeak.hidden = !(weakHidden > 0 || (state.weak && state.hits.some((hit) => hit.weak)));

    if (!state.hits.length) {
      if (weakHidden > 0) showNoClose(weakHidden);
      else showNoResults();
      return;
    }
    const count = state.hits.length;
    const what = t(mode.endsWith("-image") ? "count.images" : mode.endsWith("-text") ? "count.passages" : "count.results", { count });
    const parts = [state.nextOffset === null ? what : t("summary.showing", { what })];
    if (data && typeof data.took_ms === "number") parts.push(L.ms(Math.round(data.took_ms)));
    if (state.nextOffset !== null) parts.push(t("summary.more"));
    el.summary.textContent = parts.join(" · ");
  }

  function toggleWeak() {
    state.weak = el.showWeak.dataset.action !== "hide";
    search({ committed: true, force: true, history: "push" });
  }

  function scoreBadge(hit) {
    const value = relevance(hit.score);
    if (value === null) return null;
    const percent = L.percent(value);
    const title = typeof hit.cosine === "number"
      ? t("card.relevanceCosine", { percent, cosine: L.decimal(hit.cosine, 3) }) : t("card.relevance", { percent });
    return h("span", { class: "score", title, "data-testid": "result-score", "data-relevance": String(value) },
      h("span", { class: "score__bar", "aria-hidden": "true" }, h("span", { class: "score__fill", style: `width:${Math.round(value * 100)}%` })),
      h("span", { class: "score__value" }, percent));
  }

  /** "3 copies": a button on a hit that near-duplicates were folded into, listing them when opened. */
  function copiesBadge(hit, name) {
    const copies = Array.isArray(hit.copies) ? hit.copies.filter((c) => c && c.id !== undefined) : [];
    if (!copies.length) return [null, null];
    const listId = `copies-${hit.id}`;
    const list = h("ul", { class: "card__copies", id: listId, "data-testid": "copies-list", hidden: true,
      "aria-label": t("card.copiesList", { name }) },
      copies.map((copy) => h("li", {}, h("button", { type: "button", class: "card__copy", title: copy.path, "data-id": String(copy.id),
        onclick: () => openPreviewById(Number(copy.id)) }, h("bdi", {}, displayPath(String(copy.path || "")))))));
    const badge = h("button", { type: "button", class: "badge badge--copies", "data-testid": "copies-badge",
      "aria-expanded": "false", "aria-controls": listId, title: t("card.copiesTitle") },
      t("card.copies", { count: copies.length + 1 }));
    badge.addEventListener("click", () => {
      const open = badge.getAttribute("aria-expanded") !== "true";
      badge.setAttribute("aria-expanded", open ? "true" : "false");
      list.hidden = !open;
    });
    return [badge, list];
  }

  function renderCard(hit, index) {
    const isImage = hit.kind === "image";
    const meta = hit.metadata || {};
    const name = basename(hit.path);
    const title = !isImage && meta.title ? meta.title : name;
    const shown = displayPath(hit.path);
    const weak = hit.weak === true;
    const open = h("button", { type: "button", class: "card__open", "aria-label": t(isImage ? "card.openImage" : "card.openDocument", { title }), onclick: () => openPreview(index) },
      h("span", { class: "card__title-text" }, title));

    const foot = h("div", { class: "card__foot" });
    if (isImage) {
      if (meta.width && meta.height) foot.append(h("span", {}, `${meta.width}×${meta.height}`));
    } else {
      foot.append(h("span", { class: "card__path", title: hit.path }, h("bdi", {}, shown)));
    }
    if (weak) foot.append(h("span", { class: "badge badge--weak", "data-testid": "result-weak" }, t("card.weak")));
    const score = scoreBadge(hit);
    if (score) foot.append(score);
    const [copiesButton, copiesList] = copiesBadge(hit, name);

    const card = h("li", {
      class: `card card--${isImage ? "image" : "text"}${weak ? " card--weak" : ""}`,
      id: `result-${hit.id}`,
      "data-testid": "result-card",
      "data-kind": hit.kind,
      "data-path": hit.path,
      "data-id": String(hit.id),
      "data-score": String(hit.score),
      "data-weak": weak ? "true" : null,
      "data-copies": copiesButton ? String(hit.copies.length) : null,
    });
    if (isImage) {
      const thumb = h("div", { class: "card__thumb", "data-empty": t("card.noPreview") });
      if (hit.thumbnail_url) {
        const img = h("img", { src: withKey(hit.thumbnail_url), alt: t("card.imageAlt", { name }), loading: "lazy", decoding: "async", width: "256", height: "256" });
        img.addEventListener("error", () => { img.remove(); thumb.classList.add("card__thumb--broken"); }, { once: true });
        thumb.append(img);
      } else {
        thumb.classList.add("card__thumb--broken");
      }
      if (copiesButton) copiesButton.classList.add("card__copies-badge");
      card.append(thumb, ...(copiesButton ? [copiesButton] : []), h("div", { class: "card__body" }, h("h3", { class: "card__title", title: hit.path }, open),
        h("p", { class: "visually-hidden" }, shown), copiesList, foot));
    } else {
      const ext = extension(hit.path);
      const passage = meta.passages > 1 ? t("card.part", { passage: L.number(meta.passage), passages: L.number(meta.passages) }) : "";
      card.append(h("div", { class: "card__body" },
        h("div", { class: "card__eyebrow" }, h("span", { class: "badge badge--kind" }, ext || t("card.text")), h("span", { class: "card__part" }, passage), copiesButton),
        h("h3", { class: "card__title" }, open),
        h("p", { class: "card__snippet", "data-testid": "result-snippet" }, snippetNodes(hit.snippet)),
        copiesList, foot));
    }
    return card;
  }

  // ---------------------------------------------------------------- states -------

  /** Show one state panel. `redraw` draws it again (in another language) without asking the server. */
  function showState(testid, iconName, title, ...content) {
    stopEmptyPoll();
    el.state.className = `state${testid === "state-error" ? " state--error" : ""}`;
    el.state.replaceChildren(h("div", { "data-testid": testid }, icon(iconName), h("h2", {}, title), ...content));
  }

  function showIdle(imageHint = false) {
    clearResults();
    closeAnswer();
    state.hits = [];
    state.nextOffset = null;
    state.lastData = null;
    state.lastKey = "";
    if (state.status && !state.status.items) { showEmptyIndex(); return; }
    showState("state-idle", "search", t("state.idleTitle"),
      h("p", {}, t(imageHint ? "state.idleImage" : "state.idleText")),
      h("div", { class: "examples" }, L.examples.map((text) => h("button", { type: "button", class: "chip", onclick: () => {
        el.input.value = text;
        setQuery({ type: "text", q: text });
        search({ committed: true, history: "push" });
      } }, text))));
    state.redraw = () => showIdle(imageHint);
  }

  function commandBox(command) {
    const copy = h("button", { type: "button", class: "button", "data-testid": "copy-command" }, t("state.copy"));
    copy.addEventListener("click", async () => {
      try { await navigator.clipboard.writeText(command); copy.textContent = t("state.copied"); } catch { copy.textContent = t("state.selectCopy"); }
      setTimeout(() => { copy.textContent = t("state.copy"); }, 1600);
    });
    return h("div", { class: "command" }, h("code", { "data-testid": "index-command" }, command), copy);
  }

  function showEmptyIndex(message) {
    clearResults();
    closeAnswer();
    showState("state-empty-index", "folder", t("state.emptyTitle"),
      h("p", {}, t("state.emptyBody")),
      commandBox("searchd index PATH"),
      message ? h("p", { class: "hint" }, message) : null,
      h("p", { class: "hint" }, t("state.emptyPoll")));
    startEmptyPoll();
    state.redraw = () => showEmptyIndex(message);
  }

  function otherModeSuggestion() {
    const q = state.query;
    const mode = currentMode();
    const otherModes = q && q.type === "text" ? TEXT_MODES : IMAGE_MODES;
    return mode !== otherModes[2]
      ? h("div", { class: "state__actions" }, h("button", { type: "button", class: "button", onclick: () => chooseMode(otherModes[2]) },
        t(q && q.type === "text" ? "state.searchEverything" : "state.findBoth")))
      : null;
  }

  function showNoResults() {
    const q = state.query;
    const text = q && q.type === "text"
      ? t(currentMode() === "text-all" ? "state.noResultsText" : "state.noResultsTextMode", { q: q.q }) : t("state.noResultsImage");
    showState("state-no-results", "empty", t("state.noResultsTitle"),
      h("p", {}, text),
      h("p", { class: "hint" }, t("state.noResultsHint")),
      otherModeSuggestion());
    el.summary.textContent = t("summary.noResults");
  }

  /** Nothing above the relevance floor, but some below it: the "Show weaker matches" button follows. */
  function showNoClose(weakHidden) {
    const q = state.query;
    showState("state-no-close", "empty", t("state.noCloseTitle"),
      h("p", {}, q && q.type === "text" ? t("state.noCloseText", { q: q.q }) : t("state.noCloseImage")),
      h("p", { class: "hint" }, t("state.noCloseHint", { count: weakHidden })));
    el.summary.textContent = t("summary.noClose");
  }

  function showError(err, query) {
    closeAnswerIfIdle();
    if (err.status === 503 && /searchd index/.test(err.message)) {
      showEmptyIndex();
      el.summary.textContent = t("summary.nothingIndexed");
      state.redraw = () => showError(err, query);
      return;
    }
    const retry = h("button", { type: "button", class: "button button--primary", "data-testid": "retry", onclick: () => (state.query ? search({ committed: true, force: true }) : boot()) }, t("error.retry"));
    state.redraw = () => showError(err, query);
    if (err.network) {
      showState("state-error", "offline", t("error.unreachableTitle"),
        h("p", {}, L.nodes("error.unreachableBody", {}, { command: h("code", {}, "searchd serve") })),
        h("p", { class: "state__message", "data-testid": "error-message" }, t("error.unreachable")),
        h("div", { class: "state__actions" }, retry));
      el.summary.textContent = t("summary.unreachable");
      return;
    }
    if (err.status === 401) { showAuth(err.message); return; }
    if (query && query.type === "image" && [400, 413, 415].includes(err.status)) {
      showState("state-error", "image", t(err.status === 413 ? "error.tooLargeTitle" : "error.notImageTitle"),
        h("p", { class: "state__message", "data-testid": "error-message" }, err.message),
        h("p", { class: "hint" }, t("error.imageHint", { mb: L.number(config.maxUploadMb) })),
        h("div", { class: "state__actions" }, h("button", { type: "button", class: "button button--primary", onclick: () => el.uploadInput.click() }, t("error.chooseAnother"))));
      el.summary.textContent = t("summary.uploadRefused");
      return;
    }
    showState("state-error", "alert", t(err.status === 404 ? "error.notFound" : "error.failed"),
      h("p", { class: "state__message", "data-testid": "error-message" }, err.message),
      err.status >= 500 ? h("div", { class: "state__actions" }, retry) : null);
    el.summary.textContent = t("summary.error");
  }

  function showAuth(message) {
    clearResults();
    const input = h("input", { type: "password", id: "api-key", autocomplete: "current-password", "data-testid": "api-key-input", class: "chip", style: "min-width:16em;cursor:text" });
    const formEl = h("form", { class: "state__actions" },
      h("label", { class: "visually-hidden", for: "api-key" }, t("auth.label")), input,
      h("button", { type: "submit", class: "button button--primary" }, t("auth.use")));
    formEl.addEventListener("submit", (event) => {
      event.preventDefault();
      try { localStorage.setItem(API_KEY_STORAGE, input.value.trim()); } catch { /* private mode */ }
      boot();
    });
    showState("state-auth", "key", t("auth.title"), h("p", { class: "state__message" }, message), formEl);
    el.summary.textContent = t("summary.keyNeeded");
    state.redraw = () => showAuth(message);
    input.focus();
  }

  function startEmptyPoll() {
    stopEmptyPoll();
    state.emptyPoll = setTimeout(async function poll() {
      try {
        const status = await api("/api/status");
        setStatus(status);
        if (status.items) {
          state.emptyPoll = null;
          if (state.query) search({ committed: true, force: true }); else showIdle();
          return;
        }
      } catch { /* keep waiting */ }
      state.emptyPoll = setTimeout(poll, EMPTY_INDEX_POLL_MS);
    }, EMPTY_INDEX_POLL_MS);
  }

  function stopEmptyPoll() {
    if (state.emptyPoll) clearTimeout(state.emptyPoll);
    state.emptyPoll = null;
  }

  function setStatus(status) {
    state.status = status;
    const roots = status && status.last_run && Array.isArray(status.last_run.roots) ? status.last_run.roots : [];
    state.roots = roots.slice().sort((a, b) => b.length - a.length);
    const docs = (status && status.documents) || {};
    const images = docs.image || 0;
    const texts = docs.text || 0;
    el.footerCounts.textContent = status && status.items
      ? t("footer.counts", { images: t("count.images", { count: images }), documents: t("count.documents", { count: texts }) })
      : t("footer.nothing");
    if (status && "llm" in status) config.llmEnabled = Boolean(status.llm);
    config.llmModel = status && status.llm ? status.llm.model : "";
  }

  // ---------------------------------------------------------------- preview ------

  function openPreview(index) {
    const hit = state.hits[index];
    if (!hit) return;
    state.previewIndex = index;
    showPreview(hit);
  }

  async function openPreviewById(id) {
    const index = state.hits.findIndex((hit) => hit.id === id);
    if (index >= 0) { openPreview(index); return; }
    try {
      const item = await api(`/api/items/${id}`);
      state.previewIndex = -1;
      showPreview({ ...item, score: null, snippet: "" }, item);
    } catch (err) {
      showPreview({ id, kind: "text", path: t("preview.item", { id }), metadata: {}, file_url: null, snippet: "" });
      el.previewError.textContent = err.message;
      el.previewError.hidden = false;
    }
  }

  function metaRow(dl, label, value, testid) {
    if (value === null || value === undefined || value === "") return;
    dl.append(h("dt", {}, label), h("dd", testid ? { "data-testid": testid } : {}, value));
  }

  function renderMeta(hit, item) {
    const meta = { ...(hit.metadata || {}), ...((item && item.metadata) || {}) };
    const dl = el.previewMeta;
    dl.replaceChildren();
    // <wbr> after each separator so a long path breaks between folders, not inside names
    const pathNodes = String(hit.path).split(/(?<=[\/\\])/).flatMap((part) => [part, h("wbr")]);
    metaRow(dl, t("meta.path"), h("code", {}, pathNodes), "meta-path");
    if (meta.width && meta.height) metaRow(dl, t("meta.dimensions"), `${L.number(meta.width)} × ${L.number(meta.height)} px`, "meta-dimensions");
    metaRow(dl, t("meta.taken"), meta.taken_at ? humanDate(meta.taken_at) : "", "meta-taken");
    metaRow(dl, t("meta.camera"), meta.camera, "meta-camera");
    metaRow(dl, t("meta.location"), formatGps(meta.gps), "meta-gps");
    metaRow(dl, t("meta.format"), meta.format);
    if (meta.frames > 1) metaRow(dl, t("meta.frames"), L.number(meta.frames));
    if (hit.kind === "text" && meta.passages) metaRow(dl, t("meta.passage"), t("meta.passageOf", { passage: L.number(meta.passage), passages: L.number(meta.passages) }));
    metaRow(dl, t("meta.size"), humanSize(meta.size), "meta-size");
    metaRow(dl, t("meta.modified"), humanDate(meta.modified), "meta-modified");
    const value = relevance(hit.score);
    if (value !== null) metaRow(dl, t("meta.relevance"), L.percent(value), "meta-relevance");
    if (typeof hit.cosine === "number") metaRow(dl, t("meta.cosine"), L.decimal(hit.cosine, 4), "meta-cosine");
    const copies = Array.isArray(hit.copies) ? hit.copies : [];
    if (copies.length) metaRow(dl, t("meta.copies"), copies.flatMap((c, i) => [i ? h("br") : null, h("code", {}, displayPath(String(c.path || "")))]), "meta-copies");
  }

  function showPreview(hit, item = null) {
    state.previewHit = hit;
    const isImage = hit.kind === "image";
    const meta = hit.metadata || {};
    const name = basename(hit.path);
    el.previewTitle.textContent = !isImage && meta.title ? meta.title : name;
    el.previewError.hidden = true;
    el.preview.dataset.id = String(hit.id);
    el.preview.dataset.kind = hit.kind;
    el.preview.dataset.path = hit.path;
    renderMeta(hit, item);

    el.previewMedia.replaceChildren();
    if (isImage) {
      const img = h("img", { alt: t("preview.alt", { name }), "data-testid": "preview-image" });
      const markSmall = () => { if (img.naturalWidth && img.naturalWidth < 320) img.classList.add("is-small"); };
      img.addEventListener("load", markSmall);
      img.src = withKey(hit.thumbnail_url || hit.file_url);
      el.previewMedia.append(img);
      if (hit.file_url) {
        // Swap in the original once it has loaded (and only if the browser can show it).
        const original = new Image();
        original.onload = () => { if (state.previewHit === hit) { img.classList.remove("is-small"); img.src = original.src; } };
        original.src = withKey(hit.file_url);
      }
    } else {
      const pre = h("div", { class: "preview__text", "data-testid": "preview-text", tabindex: "0" }, snippetNodes(hit.snippet));
      el.previewMedia.append(pre);
      const fill = (record) => {
        if (state.previewHit !== hit || !record || !record.text) return;
        const terms = state.query && state.query.type === "text" ? queryTerms(state.query.q) : [];
        pre.replaceChildren(highlighted(record.text, terms));
        renderMeta(hit, record);
      };
      if (item) fill(item);
      else api(`/api/items/${hit.id}`).then(fill).catch((err) => {
        if (state.previewHit !== hit) return;
        el.previewError.textContent = t("preview.passageFailed", { message: err.message });
        el.previewError.hidden = false;
      });
    }

    if (hit.file_url) {
      el.openOriginal.href = withKey(hit.file_url);
      el.openOriginal.hidden = false;
    } else {
      el.openOriginal.hidden = true;
    }
    el.findSimilar.textContent = t(isImage ? "preview.findSimilar" : "preview.findRelated");
    el.previewPrev.disabled = state.previewIndex <= 0;
    el.previewNext.disabled = state.previewIndex < 0 || state.previewIndex >= state.hits.length - 1;
    if (!el.preview.open) {
      el.preview.showModal();
      el.previewClose.focus();
    }
  }

  function closePreview() {
    if (el.preview.open) el.preview.close();
  }

  function stepPreview(delta) {
    if (state.previewIndex < 0) return;
    const next = state.previewIndex + delta;
    if (next < 0 || next >= state.hits.length) return;
    openPreview(next);
    if (el.previewNext.disabled && delta > 0) el.previewPrev.focus();
    if (el.previewPrev.disabled && delta < 0) el.previewNext.focus();
  }

  function findSimilar() {
    const hit = state.previewHit;
    if (!hit) return;
    closePreview();
    if (hit.kind !== "image") state.imageMode = "image-text";
    setQuery({ type: "similar", itemId: hit.id, item: { path: hit.path, thumbnail_url: hit.thumbnail_url, kind: hit.kind } });
    search({ committed: true, force: true, history: "push" });
    el.results.focus({ preventScroll: true });
    window.scrollTo({ top: 0 });
  }

  // ---------------------------------------------------------------- image input --

  function searchByFile(file) {
    if (!file) return;
    clearTimeout(debounceTimer);
    const limit = config.maxUploadMb * 1024 * 1024;
    uploadCounter += 1;
    const uploadId = `u${Date.now().toString(36)}${uploadCounter}`;
    const upload = { file, url: URL.createObjectURL(file), name: file.name || t("search.pasted"), uploadId };
    uploads.set(uploadId, upload);
    setQuery({ type: "image", ...upload });
    recordHistory("push");
    if (file.size > limit) {
      // Spare the upload: the server would refuse it with 413 anyway.
      clearResults();
      state.lastKey = "";
      showError(new ApiError(t("error.uploadTooLarge", { mb: L.number(config.maxUploadMb), size: humanSize(file.size) }), 413), state.query);
      return;
    }
    search({ committed: true, force: true });
  }

  function imageFromTransfer(transfer) {
    if (!transfer) return null;
    const files = Array.from(transfer.files || []);
    if (files.length) return files.find((f) => f.type.startsWith("image/")) || files[0];
    for (const item of Array.from(transfer.items || [])) {
      if (item.kind === "file") return item.getAsFile();
    }
    return null;
  }

  // ---------------------------------------------------------------- answers ------

  const answer = { controller: null, q: "", text: "", citations: new Map(), pending: "" };

  function closeAnswer() {
    if (answer.controller) answer.controller.abort();
    answer.controller = null;
    answer.q = "";
    el.answer.hidden = true;
  }

  function closeAnswerIfIdle() {
    if (!answer.controller) closeAnswer();
  }

  /** The answer panel follows text queries. It streams on a committed search (Enter, a link, a
   *  reload); while the user is still typing it only offers to, so the LLM is not asked per pause. */
  function maybeAnswer(committed) {
    const query = state.query;
    if (!config.llmEnabled || !query || query.type !== "text") { closeAnswer(); return; }
    if (answer.q === query.q && (answer.controller || answer.text)) return;  // after an error, Enter asks again
    if (committed) { streamAnswer(query.q); return; }
    if (answer.controller) answer.controller.abort();
    answer.controller = null;
    answer.q = "";
    answer.pending = query.q;
    resetAnswer();
    el.answer.hidden = false;
    el.answerAsk.hidden = false;
    el.answerMeta.textContent = t("answer.hint");
  }

  function resetAnswer() {
    answer.text = "";
    answer.citations = new Map();
    el.answerBody.replaceChildren();
    el.answerBody.setAttribute("aria-busy", "false");
    el.answerError.hidden = true;
    el.answerCitations.hidden = true;
    el.answerCitations.replaceChildren();
    el.answerStop.hidden = true;
    el.answerAsk.hidden = true;
  }

  async function streamAnswer(q) {
    if (answer.controller) answer.controller.abort();
    const controller = new AbortController();
    answer.controller = controller;
    answer.q = q;
    resetAnswer();
    el.answer.hidden = false;
    el.answerMeta.textContent = config.llmModel ? t("answer.writingWith", { model: config.llmModel }) : t("answer.writing");
    el.answerBody.setAttribute("aria-busy", "true");
    el.answerStop.hidden = false;
    const live = () => answer.controller === controller;
    try {
      let response;
      try {
        response = await fetch("/api/answer", {
          method: "POST", signal: controller.signal,
          headers: { "Content-Type": "application/json", Accept: "text/event-stream", ...authHeaders() },
          body: JSON.stringify({ q, mode: "text-all", k: 8, stream: true }),
        });
      } catch (err) {
        if (err.name === "AbortError") throw err;
        throw new ApiError(t("error.unreachable"), 0, true);
      }
      if (!response.ok || !response.body) {
        let message = t("answer.failedStatus", { status: response.status });
        try { const data = await response.json(); if (data && data.error) message = data.error; } catch { /* not JSON */ }
        throw new ApiError(message, response.status);
      }
      await readEvents(response.body, (event, data) => { if (live()) onAnswerEvent(event, data); });
      if (live() && el.answerMeta.textContent.endsWith("…")) el.answerMeta.textContent = "";
    } catch (err) {
      if (err && err.name === "AbortError") return;
      if (!live()) return;
      showAnswerError(err.message || String(err));
    } finally {
      if (live()) {
        answer.controller = null;
        el.answerBody.setAttribute("aria-busy", "false");
        el.answerStop.hidden = true;
      }
    }
  }

  /** Minimal text/event-stream reader over fetch(): blocks are separated by a blank line. */
  async function readEvents(stream, onEvent) {
    const reader = stream.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    const flush = (block) => {
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") event = value;
        else if (field === "data") data.push(value);
      }
      if (!data.length) return;
      let parsed;
      try { parsed = JSON.parse(data.join("\n")); } catch { parsed = { text: data.join("\n") }; }
      onEvent(event, parsed);
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      // Normalise CRLF/CR, keeping a trailing CR until we know whether LF follows.
      const hold = buffer.endsWith("\r") ? "\r" : "";
      buffer = (hold ? buffer.slice(0, -1) : buffer).replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        flush(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
      }
      buffer += hold;
    }
    buffer += decoder.decode();
    if (buffer.trim()) flush(buffer.replace(/\r\n?/g, "\n"));
  }

  function onAnswerEvent(event, data) {
    if (event === "token") {
      answer.text += data.text || "";
      renderAnswerText();
    } else if (event === "citations") {
      answer.citations = new Map((data.citations || []).map((c) => [Number(c.n), c]));
      renderAnswerText();
      renderCitations();
    } else if (event === "error") {
      showAnswerError(data.answer_error || data.error || t("answer.failed"));
    } else if (event === "done") {
      if (typeof data.answer === "string" && data.answer && data.answer !== answer.text) {
        answer.text = data.answer;  // the server's whole answer is the one to keep
        renderAnswerText();
      }
      const parts = [];
      if (data.model) parts.push(data.model);
      if (typeof data.took_ms === "number") parts.push(t("answer.seconds", { n: L.decimal(data.took_ms / 1000, 1) }));
      el.answerMeta.textContent = parts.join(" · ");
    }
  }

  function showAnswerError(message) {
    el.answerError.textContent = message;
    el.answerError.hidden = false;
    el.answerMeta.textContent = "";
  }

  function citeLink(n, citation) {
    return h("a", {
      class: "cite", href: `#result-${citation.id}`, "data-testid": "answer-cite", "data-n": String(n), "data-id": String(citation.id),
      title: citation.path, onclick: (event) => { event.preventDefault(); goToCitation(citation); },
    }, `[${n}]`);
  }

  function renderAnswerText() {
    const fragment = document.createDocumentFragment();
    for (const part of answer.text.split(/(\[\d+\])/)) {
      const match = /^\[(\d+)\]$/.exec(part);
      const citation = match && answer.citations.get(Number(match[1]));
      fragment.append(citation ? citeLink(Number(match[1]), citation) : document.createTextNode(part));
    }
    el.answerBody.replaceChildren(fragment);
  }

  function renderCitations() {
    el.answerCitations.replaceChildren(...[...answer.citations.entries()].sort((a, b) => a[0] - b[0]).map(([n, c]) =>
      h("li", {}, h("a", { href: `#result-${c.id}`, title: c.path, onclick: (event) => { event.preventDefault(); goToCitation(c); } },
        h("span", { class: "n" }, `[${n}]`), displayPath(c.path)))));
    el.answerCitations.hidden = answer.citations.size === 0;
  }

  function goToCitation(citation) {
    const card = document.getElementById(`result-${citation.id}`);
    if (card && el.results.contains(card)) {
      card.scrollIntoView({ behavior: "smooth", block: "center" });
      card.classList.remove("is-flash");
      void card.offsetWidth;  // restart the animation
      card.classList.add("is-flash");
      card.querySelector(".card__open").focus({ preventScroll: true });
    } else {
      openPreviewById(Number(citation.id));
    }
  }

  // ---------------------------------------------------------------- language -----

  /** The page's own words in the current language: the template's marked elements, <html lang>, the switch. */
  function applyLanguage() {
    document.documentElement.lang = L.htmlLang;
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const node of document.querySelectorAll("[data-i18n-label]")) node.setAttribute("aria-label", t(node.dataset.i18nLabel));
    for (const node of document.querySelectorAll("[data-i18n-title]")) node.setAttribute("title", t(node.dataset.i18nTitle));
    for (const button of el.lang.querySelectorAll("[data-lang]")) {
      button.setAttribute("aria-pressed", button.dataset.lang === L.lang ? "true" : "false");
    }
    if (!el.loadMore.disabled) el.loadMore.textContent = t("results.loadMore");
  }

  /** Switch language in place: what is on the page is drawn again from what the server already sent. */
  function setLanguage(lang) {
    I18N.storeLang(lang);  // the switch wins over the browser from now on
    if (lang === L.lang) return;
    L = I18N.create(lang);
    applyLanguage();
    renderPlaceholder();
    renderChipLabel();
    renderModes();
    updateTitle();
    if (state.status !== null) setStatus(state.status);
    if (state.lastData && state.query) {
      renderResults(false, state.lastData);
    } else if (state.redraw) {
      state.redraw();
    }
    if (state.previewHit && el.preview.open) showPreview(state.previewHit);
    if (answer.pending && !answer.controller && !answer.text && !el.answer.hidden) el.answerMeta.textContent = t("answer.hint");
  }

  // ---------------------------------------------------------------- events -------

  function onTyping() {
    clearTimeout(debounceTimer);
    const text = el.input.value.trim();
    debounceTimer = setTimeout(() => {
      if (!text) {
        if (state.query && state.query.type === "text") {
          setQuery(null);
          recordHistory("typed");
          showIdle();
        }
        return;
      }
      if (state.query && state.query.type === "text" && state.query.q === text) return;
      setQuery({ type: "text", q: text });
      search({ history: "typed" });
    }, DEBOUNCE_MS);
  }

  function onSubmit(event) {
    event.preventDefault();
    clearTimeout(debounceTimer);
    const text = el.input.value.trim();
    if (!text) {
      if (state.query && state.query.type !== "text") search({ committed: true, force: true });
      else el.input.focus();
      return;
    }
    if (!(state.query && state.query.type === "text" && state.query.q === text)) setQuery({ type: "text", q: text });
    search({ committed: true, history: "commit" });
  }

  function onKeydown(event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    const typing = target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
    if (el.preview.open) {
      if (event.key === "ArrowLeft" && !typing) { event.preventDefault(); stepPreview(-1); }
      else if (event.key === "ArrowRight" && !typing) { event.preventDefault(); stepPreview(1); }
      return;
    }
    if (event.key === "/" && !typing) {
      event.preventDefault();
      el.input.focus();
      el.input.select();
    }
  }

  function onModesKeydown(event) {
    const buttons = [...el.modes.querySelectorAll(".mode")];
    const index = buttons.indexOf(document.activeElement);
    if (index < 0) return;
    let next = -1;
    if (event.key === "ArrowRight" || event.key === "ArrowDown") next = (index + 1) % buttons.length;
    if (event.key === "ArrowLeft" || event.key === "ArrowUp") next = (index + buttons.length - 1) % buttons.length;
    if (next < 0) return;
    event.preventDefault();
    buttons[next].focus();
    chooseMode(buttons[next].dataset.mode);
  }

  function wireEvents() {
    el.form.addEventListener("submit", onSubmit);
    el.input.addEventListener("input", onTyping);
    el.uploadButton.addEventListener("click", () => el.uploadInput.click());
    el.uploadInput.addEventListener("change", () => {
      const file = el.uploadInput.files && el.uploadInput.files[0];
      searchByFile(file);
      el.uploadInput.value = "";  // picking the same file again still searches
    });
    el.chipImg.addEventListener("error", () => { el.chipImg.hidden = true; });  // e.g. a file that is no image
    el.chipClear.addEventListener("click", () => {
      setQuery(null);
      recordHistory("push");
      showIdle();
      el.input.focus();
    });
    el.modes.addEventListener("click", (event) => {
      const button = event.target.closest(".mode");
      if (button) chooseMode(button.dataset.mode);
    });
    el.modes.addEventListener("keydown", onModesKeydown);
    el.loadMore.addEventListener("click", loadMore);
    el.showWeak.addEventListener("click", toggleWeak);
    el.collapse.addEventListener("change", () => {
      state.collapse = el.collapse.checked;
      if (state.query) search({ committed: true, force: true, history: "push" });
      else recordModeOnly();
    });
    el.lang.addEventListener("click", (event) => {
      const button = event.target.closest("[data-lang]");
      if (button) setLanguage(button.dataset.lang);
    });
    document.addEventListener("keydown", onKeydown);

    el.previewClose.addEventListener("click", closePreview);
    el.previewPrev.addEventListener("click", () => stepPreview(-1));
    el.previewNext.addEventListener("click", () => stepPreview(1));
    el.findSimilar.addEventListener("click", findSimilar);
    el.preview.addEventListener("click", (event) => { if (event.target === el.preview) closePreview(); });
    el.preview.addEventListener("close", () => {
      const hit = state.previewHit;
      state.previewHit = null;
      el.previewMedia.replaceChildren();
      const card = hit && document.getElementById(`result-${hit.id}`);
      if (card) card.querySelector(".card__open").focus({ preventScroll: true });
    });

    el.answerAsk.addEventListener("click", () => { if (answer.pending) streamAnswer(answer.pending); });
    el.answerStop.addEventListener("click", () => {
      if (answer.controller) answer.controller.abort();
      answer.controller = null;
      el.answerBody.setAttribute("aria-busy", "false");
      el.answerStop.hidden = true;
      el.answerMeta.textContent = t("answer.stopped");
    });

    document.addEventListener("paste", (event) => {
      const file = imageFromTransfer(event.clipboardData);
      if (!file) return;  // plain text: let it paste into the box
      event.preventDefault();
      searchByFile(file);
    });

    // Drag and drop anywhere on the page. dragenter/dragleave fire per element, hence the counter.
    let dragDepth = 0;
    const hasFiles = (event) => event.dataTransfer && Array.from(event.dataTransfer.types || []).includes("Files");
    window.addEventListener("dragenter", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      dragDepth += 1;
      el.dropzone.hidden = false;
    });
    window.addEventListener("dragover", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    });
    window.addEventListener("dragleave", (event) => {
      if (!hasFiles(event)) return;
      dragDepth = Math.max(0, dragDepth - 1);
      if (dragDepth === 0) el.dropzone.hidden = true;
    });
    window.addEventListener("drop", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      dragDepth = 0;
      el.dropzone.hidden = true;
      searchByFile(imageFromTransfer(event.dataTransfer));
    });

    window.addEventListener("popstate", (event) => {
      closePreview();
      applyLocation(event.state);
    });
  }

  // ---------------------------------------------------------------- start --------

  async function boot() {
    setBusy(true);
    try {
      setStatus(await api("/api/status"));
    } catch (err) {
      setBusy(false);
      setStatus(null);
      if (err.status === 401) { showAuth(err.message); return; }
      if (err.network) { clearResults(); showError(err, null); return; }
      // other status failures should not stop searching
    }
    setBusy(false);
    applyLocation(history.state);
  }

  wireEvents();
  applyLanguage();
  renderPlaceholder();
  renderModes();
  boot();
})();
