// StarModel's browser helper (served by the app; under 5 KB).
// 1. Tags every Datastar request with this tab's id, so the tab's own changes are not echoed
//    back on its live stream.
// 2. Error answers (4xx/5xx) of events carry an SSE body (error toast, field errors); Datastar
//    ignores bodies of non-200 answers, so they are handed to it as 200 here. The status on the
//    wire stays the real one for every other client.
// 3. Browser-stored entities (CLIENT_SESSION / CLIENT_LOCAL): their fields are kept in
//    sessionStorage / localStorage under "starmodel:<namespace>". On load the page posts what
//    it kept to the server, which checks it and patches it in (or answers with the defaults);
//    every later change of those signals is stored again; other tabs of the browser follow
//    changes to localStorage. The server validates the state again before every event.
(() => {
  if (window.__starmodel) return;
  const tab = (self.crypto && crypto.randomUUID) ? crypto.randomUUID()
    : Math.random().toString(36).slice(2) + Date.now().toString(36);
  const nativeFetch = window.fetch.bind(window);
  const RESTORE = /\/_starmodel\/client\/([A-Za-z0-9_-]+)\/restore$/;
  const waiting = new Set();  // namespaces whose restore answer has not arrived yet
  const ready = new Set();    // namespaces whose changes are stored

  const holders = (ns) => document.querySelectorAll(`[data-starmodel-client="${ns}"]`);
  const describe = (ns) => {
    const el = holders(ns)[0];
    if (!el) return null;
    const store = el.dataset.starmodelStorage === "local" ? window.localStorage : window.sessionStorage;
    return { store, fields: (el.dataset.starmodelFields || "").split(",").filter(Boolean) };
  };
  const read = (ns) => {
    const about = describe(ns);
    if (!about) return undefined;
    try {
      const text = about.store.getItem("starmodel:" + ns);
      return text === null ? undefined : JSON.parse(text);
    } catch (_) {
      return "unreadable";  // the server refuses it and the page resets it
    }
  };
  const write = (ns, values, replace) => {
    const about = describe(ns);
    if (!about) return;
    const key = "starmodel:" + ns;
    let kept = {};
    if (!replace) {
      try { kept = JSON.parse(about.store.getItem(key) || "{}") || {}; } catch (_) { kept = {}; }
    }
    for (const field of about.fields) {
      if (Object.prototype.hasOwnProperty.call(values, field)) kept[field] = values[field];
    }
    const text = JSON.stringify(kept);
    if (about.store.getItem(key) !== text) about.store.setItem(key, text);
  };

  window.__starmodel = { tab, read };
  window.fetch = async (input, init = {}) => {
    const headers = new Headers(init.headers || undefined);
    if (!headers.has("Datastar-Request")) return nativeFetch(input, init);
    headers.set("X-StarModel-Tab", tab);
    const url = typeof input === "string" ? input : (input && input.url) || "";
    const restoring = new URL(url, location.href).pathname.match(RESTORE);
    if (restoring) {
      const ns = restoring[1];
      const kept = read(ns);
      let body = {};
      try { body = JSON.parse(init.body || "{}"); } catch (_) { body = {}; }
      if (kept !== undefined) body[ns] = kept;
      init = { ...init, body: JSON.stringify(body) };
      waiting.add(ns);
    }
    const response = await nativeFetch(input, { ...init, headers });
    if (restoring) {
      // The answer holds the checked state (or the defaults): store it whole, even when it
      // equals what the page shows (Datastar's patch event only carries what changed).
      const ns = restoring[1];
      const text = await response.text();
      for (const line of text.split("\n")) {
        if (!line.startsWith("data: signals ")) continue;
        let patch = null;
        try { patch = JSON.parse(line.slice("data: signals ".length)); } catch (_) { continue; }
        const values = patch && patch[ns];
        if (values && Object.keys(values).some((name) => !name.startsWith("_"))) write(ns, values, true);
      }
      waiting.delete(ns);
      ready.add(ns);
      return new Response(text, { status: 200, statusText: "OK", headers: response.headers });
    }
    const type = response.headers.get("Content-Type") || "";
    if (response.status >= 400 && type.includes("text/event-stream")) {
      return new Response(response.body, { status: 200, statusText: "OK", headers: response.headers });
    }
    return response;
  };

  // every signal change, from the server or from bound inputs
  document.addEventListener("datastar-signal-patch", (event) => {
    const patch = event.detail || {};
    for (const ns of Object.keys(patch)) {
      const values = patch[ns];
      if (!values || typeof values !== "object") continue;
      if (ready.has(ns) && !waiting.has(ns)) {
        write(ns, values, false);
      }
    }
  });

  // another tab of this browser changed a localStorage entity: fetch it through the server
  window.addEventListener("storage", (event) => {
    const match = (event.key || "").match(/^starmodel:(.+)$/);
    if (!match || !ready.has(match[1])) return;
    for (const el of holders(match[1])) {
      if (el.dataset.starmodelStorage === "local") {
        el.dispatchEvent(new CustomEvent("starmodel-restore"));
        break;
      }
    }
  });
})();
