/* searchd search page: the page's own words, in every language it speaks, and the Intl formatters
 * that go with them. Plain JS loaded before app.js; no build step.
 *
 * A string is either text with {name} placeholders or a function of the same values (for plurals
 * and word order). Counts arrive as `count` (the number) and are formatted into `n` for the locale.
 * Words that come from the server (error messages, file names) are shown as they are.
 */
window.searchdI18n = (() => {
  "use strict";

  const LANG_STORAGE = "searchd.lang";
  const english = (one, many) => (v) => `${v.n} ${v.count === 1 ? one : many}`;

  const STRINGS = {
    en: {
      "page.skip": "Skip to results",
      "page.home": "searchd home",
      "page.language": "Language",
      "search.label": "Search your photos and documents",
      "search.placeholder": "Search by meaning: “a red circle”, “speech to text”…",
      "search.placeholderShort": "Search by meaning…",
      "search.placeholderImage": "Or type words to search by text…",
      "search.placeholderImageShort": "Or type words…",
      "search.submit": "Search",
      "search.upload": "Search by an image",
      "search.uploadTitle": "Search by an image (or drop / paste one)",
      "search.clearImage": "Clear the image query",
      "search.clear": "Clear",
      "search.pasted": "Pasted image",
      "search.image": "image",
      "search.similarTo": "Similar to {name}",
      "search.similarToItem": "Similar to item {id}",
      "search.drop": "Drop an image to search with it",
      "modes.label": "What to find",
      "modes.labelImage": "What to find for this image",
      "mode.image": "Images",
      "mode.image.forImage": "Similar images",
      "mode.text": "Text",
      "mode.text.forImage": "Related text",
      "mode.all": "Everything",
      "mode.all.forImage": "Both",
      "collapse.label": "Collapse duplicates",
      "collapse.title": "Show near-identical images as one result that lists its copies",
      "count.images": english("image", "images"),
      "count.passages": english("passage", "passages"),
      "count.results": english("result", "results"),
      "count.documents": english("document", "documents"),
      "summary.showing": "Showing {what}",
      "summary.more": "more available",
      "summary.noResults": "No results",
      "summary.noClose": "No close matches",
      "summary.nothingIndexed": "Nothing indexed yet",
      "summary.unreachable": "Server unreachable",
      "summary.uploadRefused": "Upload refused",
      "summary.error": "Error",
      "summary.keyNeeded": "API key needed",
      "results.heading": "Results",
      "results.loadMore": "Load more",
      "results.loading": "Loading…",
      "results.moreUnreachable": "The searchd server cannot be reached. Try again in a moment.",
      "results.moreFailed": "Could not load more: {message}",
      "results.showWeak": (v) => `Show weaker matches (${v.n})`,
      "results.hideWeak": "Hide weaker matches",
      "card.openImage": "Image: {title}. Open preview",
      "card.openDocument": "Document: {title}. Open preview",
      "card.imageAlt": "Image {name}",
      "card.noPreview": "no preview",
      "card.text": "text",
      "card.part": "part {passage} of {passages}",
      "card.relevance": "Relevance {percent}",
      "card.relevanceCosine": "Relevance {percent} · cosine {cosine}",
      "card.weak": "weak match",
      "card.copies": (v) => `${v.n} ${v.count === 1 ? "copy" : "copies"}`,
      "card.copiesTitle": "Near-identical copies folded into this result",
      "card.copiesList": "Copies of {name}",
      "state.idleTitle": "Find photos and documents by meaning",
      "state.idleImage": "Pick, drop or paste an image to find similar images or related text.",
      "state.idleText": "Type what you are looking for, or drop, paste or pick an image to search with it.",
      "state.emptyTitle": "Nothing is indexed yet",
      "state.emptyBody": "Index a folder of photos and documents, then search it here:",
      "state.emptyPoll": "This page notices when the index is ready.",
      "state.copy": "Copy",
      "state.copied": "Copied",
      "state.selectCopy": "Select and copy",
      "state.noResultsTitle": "No results",
      "state.noResultsText": "Nothing matched “{q}”.",
      "state.noResultsTextMode": "Nothing matched “{q}” in this mode.",
      "state.noResultsImage": "Nothing similar was found.",
      "state.noResultsHint": "Try other words, or a different kind of result.",
      "state.searchEverything": "Search everything",
      "state.findBoth": "Find both images and text",
      "state.noCloseTitle": "No close matches",
      "state.noCloseText": "Nothing came close to “{q}”.",
      "state.noCloseImage": "Nothing came close to this image.",
      "state.noCloseHint": (v) => `${v.n} weaker ${v.count === 1 ? "match was" : "matches were"} left out.`,
      "error.unreachable": "The searchd server cannot be reached.",
      "error.status": "The server answered {status}",
      "error.retry": "Try again",
      "error.unreachableTitle": "Can’t reach the searchd server",
      "error.unreachableBody": "The page could not talk to the server. Is {command} still running?",
      "error.tooLargeTitle": "That image is too large",
      "error.notImageTitle": "That file can’t be used as a search image",
      "error.imageHint": "Use a JPEG, PNG, WebP or GIF image up to {mb} MB.",
      "error.chooseAnother": "Choose another image",
      "error.notFound": "Not found",
      "error.failed": "The search failed",
      "error.uploadTooLarge": "upload larger than {mb} MB (this file is {size})",
      "auth.title": "An API key is needed",
      "auth.label": "API key",
      "auth.use": "Use this key",
      "footer.counts": "{images} and {documents} indexed",
      "footer.nothing": "nothing indexed yet",
      "footer.api": "API",
      "footer.search": "search",
      "footer.close": "close",
      "footer.browse": "browse",
      "answer.title": "Answer",
      "answer.ask": "Write an answer",
      "answer.stop": "Stop",
      "answer.hint": "Press Enter to ask for a written answer with sources",
      "answer.writingWith": "Writing with {model}…",
      "answer.writing": "Writing…",
      "answer.failedStatus": "The answer failed ({status})",
      "answer.failed": "The answer failed.",
      "answer.stopped": "Stopped",
      "answer.seconds": "{n} s",
      "preview.prev": "Previous result",
      "preview.next": "Next result",
      "preview.close": "Close preview",
      "preview.findSimilar": "Find similar",
      "preview.findRelated": "Find related",
      "preview.open": "Open original",
      "preview.alt": "Preview of {name}",
      "preview.passageFailed": "Could not load the passage: {message}",
      "preview.item": "item {id}",
      "meta.path": "Path",
      "meta.dimensions": "Dimensions",
      "meta.taken": "Taken",
      "meta.camera": "Camera",
      "meta.location": "Location",
      "meta.format": "Format",
      "meta.frames": "Frames",
      "meta.passage": "Passage",
      "meta.passageOf": "{passage} of {passages}",
      "meta.size": "Size",
      "meta.modified": "Modified",
      "meta.relevance": "Relevance",
      "meta.cosine": "Cosine",
      "meta.copies": "Copies",
      "gps": (v) => `${v.lat}° ${v.north ? "N" : "S"}, ${v.lon}° ${v.east ? "E" : "W"}`,
      examples: ["a red circle", "a cat", "turning spoken audio into written words", "how does vector search work"],
      notices: {},
    },
    zh: {
      "page.skip": "跳到结果",
      "page.home": "searchd 首页",
      "page.language": "语言",
      "search.label": "搜索你的照片和文档",
      "search.placeholder": "按含义搜索：“红色的圆形”“语音转文字”…",
      "search.placeholderShort": "按含义搜索…",
      "search.placeholderImage": "或输入文字，按文本搜索…",
      "search.placeholderImageShort": "或输入文字…",
      "search.submit": "搜索",
      "search.upload": "用图片搜索",
      "search.uploadTitle": "用图片搜索（也可以拖放或粘贴图片）",
      "search.clearImage": "清除图片查询",
      "search.clear": "清除",
      "search.pasted": "粘贴的图片",
      "search.image": "图片",
      "search.similarTo": "与 {name} 相似",
      "search.similarToItem": "与条目 {id} 相似",
      "search.drop": "松开即可用这张图片搜索",
      "modes.label": "要找什么",
      "modes.labelImage": "为这张图片找什么",
      "mode.image": "图片",
      "mode.image.forImage": "相似图片",
      "mode.text": "文本",
      "mode.text.forImage": "相关文本",
      "mode.all": "全部",
      "mode.all.forImage": "图片和文本",
      "collapse.label": "合并重复项",
      "collapse.title": "把几乎相同的图片合并为一条结果，并列出各个副本",
      "count.images": "{n} 张图片",
      "count.passages": "{n} 段文本",
      "count.results": "{n} 条结果",
      "count.documents": "{n} 个文档",
      "summary.showing": "已显示 {what}",
      "summary.more": "还有更多",
      "summary.noResults": "没有结果",
      "summary.noClose": "没有相近的结果",
      "summary.nothingIndexed": "尚未建立索引",
      "summary.unreachable": "无法连接服务器",
      "summary.uploadRefused": "上传被拒绝",
      "summary.error": "出错了",
      "summary.keyNeeded": "需要 API 密钥",
      "results.heading": "结果",
      "results.loadMore": "加载更多",
      "results.loading": "正在加载…",
      "results.moreUnreachable": "无法连接 searchd 服务器，请稍后再试。",
      "results.moreFailed": "无法加载更多：{message}",
      "results.showWeak": "显示较弱的匹配（{n}）",
      "results.hideWeak": "隐藏较弱的匹配",
      "card.openImage": "图片：{title}。打开预览",
      "card.openDocument": "文档：{title}。打开预览",
      "card.imageAlt": "图片 {name}",
      "card.noPreview": "无预览",
      "card.text": "文本",
      "card.part": "第 {passage} 段，共 {passages} 段",
      "card.relevance": "相关度 {percent}",
      "card.relevanceCosine": "相关度 {percent} · 余弦 {cosine}",
      "card.weak": "弱匹配",
      "card.copies": "共 {n} 份",
      "card.copiesTitle": "已合并到这条结果中的近似副本",
      "card.copiesList": "{name} 的副本",
      "state.idleTitle": "按含义查找照片和文档",
      "state.idleImage": "选择、拖放或粘贴一张图片，查找相似的图片或相关的文本。",
      "state.idleText": "输入你要找的内容，或者拖放、粘贴、选择一张图片来搜索。",
      "state.emptyTitle": "还没有建立索引",
      "state.emptyBody": "先为存放照片和文档的文件夹建立索引，再在这里搜索：",
      "state.emptyPoll": "索引就绪后，本页会自动发现。",
      "state.copy": "复制",
      "state.copied": "已复制",
      "state.selectCopy": "请选中后复制",
      "state.noResultsTitle": "没有结果",
      "state.noResultsText": "没有与“{q}”匹配的内容。",
      "state.noResultsTextMode": "在此模式下，没有与“{q}”匹配的内容。",
      "state.noResultsImage": "没有找到相似的内容。",
      "state.noResultsHint": "换个说法试试，或者换一种结果类型。",
      "state.searchEverything": "搜索全部",
      "state.findBoth": "同时查找图片和文本",
      "state.noCloseTitle": "没有相近的结果",
      "state.noCloseText": "没有与“{q}”相近的内容。",
      "state.noCloseImage": "没有与这张图片相近的内容。",
      "state.noCloseHint": "另有 {n} 条较弱的匹配未显示。",
      "error.unreachable": "无法连接 searchd 服务器。",
      "error.status": "服务器返回了 {status}",
      "error.retry": "重试",
      "error.unreachableTitle": "无法连接 searchd 服务器",
      "error.unreachableBody": "页面无法与服务器通信。{command} 还在运行吗？",
      "error.tooLargeTitle": "这张图片太大了",
      "error.notImageTitle": "这个文件不能用作搜索图片",
      "error.imageHint": "请使用不超过 {mb} MB 的 JPEG、PNG、WebP 或 GIF 图片。",
      "error.chooseAnother": "换一张图片",
      "error.notFound": "未找到",
      "error.failed": "搜索失败",
      "error.uploadTooLarge": "上传的文件超过 {mb} MB（此文件为 {size}）",
      "auth.title": "需要 API 密钥",
      "auth.label": "API 密钥",
      "auth.use": "使用此密钥",
      "footer.counts": "已索引 {images}、{documents}",
      "footer.nothing": "尚未建立索引",
      "footer.api": "API",
      "footer.search": "搜索",
      "footer.close": "关闭",
      "footer.browse": "浏览",
      "answer.title": "回答",
      "answer.ask": "撰写回答",
      "answer.stop": "停止",
      "answer.hint": "按回车键，获取一份注明出处的书面回答",
      "answer.writingWith": "正在用 {model} 撰写…",
      "answer.writing": "正在撰写…",
      "answer.failedStatus": "回答失败（{status}）",
      "answer.failed": "回答失败。",
      "answer.stopped": "已停止",
      "answer.seconds": "{n} 秒",
      "preview.prev": "上一个结果",
      "preview.next": "下一个结果",
      "preview.close": "关闭预览",
      "preview.findSimilar": "查找相似",
      "preview.findRelated": "查找相关",
      "preview.open": "打开原文件",
      "preview.alt": "{name} 的预览",
      "preview.passageFailed": "无法加载这段文本：{message}",
      "preview.item": "条目 {id}",
      "meta.path": "路径",
      "meta.dimensions": "尺寸",
      "meta.taken": "拍摄时间",
      "meta.camera": "相机",
      "meta.location": "位置",
      "meta.format": "格式",
      "meta.frames": "帧数",
      "meta.passage": "段落",
      "meta.passageOf": "第 {passage} 段，共 {passages} 段",
      "meta.size": "大小",
      "meta.modified": "修改时间",
      "meta.relevance": "相关度",
      "meta.cosine": "余弦相似度",
      "meta.copies": "副本",
      "gps": (v) => `${v.north ? "北纬" : "南纬"} ${v.lat}°，${v.east ? "东经" : "西经"} ${v.lon}°`,
      examples: ["a red circle", "红色的圆形", "注意力机制", "语音转文字"],
      // The server writes its notices in English; the ones it is known to send read better here
      // in Chinese. Any other notice is shown as the server wrote it.
      notices: {
        "The image model reads English only: images are found through the passages and file names that match this query.":
          "图片模型只认识英文：图片是通过与查询匹配的文本段落和文件名找到的。",
      },
    },
  };

  const LANGS = Object.keys(STRINGS);
  const LABELS = { en: "EN", zh: "中文" };
  const HTML_LANG = { en: "en", zh: "zh-CN" };

  function supported(tag) {
    const base = String(tag || "").toLowerCase().split(/[-_]/)[0];
    return LANGS.includes(base) ? base : null;
  }

  function browserTags() {
    const tags = Array.isArray(navigator.languages) && navigator.languages.length ? navigator.languages : [navigator.language];
    return tags.filter(Boolean);
  }

  function storedLang() {
    try { return supported(localStorage.getItem(LANG_STORAGE)); } catch { return null; }
  }

  function storeLang(lang) {
    try { localStorage.setItem(LANG_STORAGE, lang); } catch { /* private mode: this page only */ }
  }

  /** The switch wins; otherwise the first of the browser's languages the page speaks; otherwise English. */
  function pickLang() {
    const chosen = storedLang();
    if (chosen) return chosen;
    for (const tag of browserTags()) {
      const lang = supported(tag);
      if (lang) return lang;
    }
    return "en";
  }

  /** The locale for Intl: the browser's own variant of the chosen language (en-GB dates for an en-GB
   *  browser), or the language's usual one. Chinese is Simplified Chinese here, so always zh-CN. */
  function intlLocale(lang) {
    if (lang === "zh") return "zh-CN";
    const own = browserTags().find((tag) => supported(tag) === lang);
    try { if (own) return Intl.getCanonicalLocales(own)[0]; } catch { /* not a valid tag */ }
    return "en-US";
  }

  function create(lang) {
    const table = STRINGS[lang] || STRINGS.en;
    const locale = intlLocale(lang);
    const numbers = new Intl.NumberFormat(locale);
    const percent = new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 0 });
    const dates = new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" });
    const cache = new Map();
    const numberFormat = (options) => {
      const key = JSON.stringify(options);
      if (!cache.has(key)) cache.set(key, new Intl.NumberFormat(locale, options));
      return cache.get(key);
    };

    function t(key, values = {}) {
      let entry = table[key];
      if (entry === undefined) entry = STRINGS.en[key];
      if (entry === undefined) return key;
      const v = { ...values };
      if (typeof v.count === "number" && v.n === undefined) v.n = numbers.format(v.count);
      if (typeof entry === "function") return entry(v);
      return String(entry).replace(/\{(\w+)\}/g, (match, name) => (v[name] === undefined ? match : String(v[name])));
    }

    /** The same string as DOM nodes, with a {name} placeholder filled by a node (e.g. <code>). */
    function nodes(key, values, nodeValues) {
      const text = t(key, values);
      const fragment = document.createDocumentFragment();
      for (const part of text.split(/(\{\w+\})/)) {
        const name = /^\{(\w+)\}$/.exec(part);
        if (name && nodeValues[name[1]]) fragment.append(nodeValues[name[1]]);
        else if (part) fragment.append(part);
      }
      return fragment;
    }

    function size(bytes) {
      if (typeof bytes !== "number" || !Number.isFinite(bytes)) return "";
      const units = ["byte", "kilobyte", "megabyte", "gigabyte", "terabyte"];
      let value = bytes;
      let unit = 0;
      while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
      const digits = value >= 10 || unit === 0 ? 0 : 1;
      return numberFormat({ style: "unit", unit: units[unit], unitDisplay: unit === 0 ? "long" : "short",
                            maximumFractionDigits: digits, minimumFractionDigits: digits }).format(value);
    }

    function date(iso) {
      if (!iso) return "";
      const parsed = new Date(String(iso).replace(" ", "T"));
      return Number.isNaN(parsed.getTime()) ? String(iso) : dates.format(parsed);
    }

    return {
      lang, locale, t, nodes, size, date,
      number: (n) => numbers.format(n),
      percent: (fraction) => percent.format(fraction),
      decimal: (n, digits) => numberFormat({ minimumFractionDigits: digits, maximumFractionDigits: digits }).format(n),
      ms: (n) => numberFormat({ style: "unit", unit: "millisecond", unitDisplay: "short", maximumFractionDigits: 0 }).format(n),
      examples: table.examples || STRINGS.en.examples,
      notice: (text) => (table.notices && table.notices[text]) || text,
      htmlLang: HTML_LANG[lang] || lang,
    };
  }

  return { LANGS, LABELS, pickLang, storeLang, create };
})();
