// StarModel's browser helper (served by the app, a few hundred bytes).
// 1. Tags every Datastar request with this tab's id, so the tab's own changes are not echoed
//    back on its live stream.
// 2. Error answers (4xx/5xx) of events carry an SSE body (error toast, field errors); Datastar
//    ignores bodies of non-200 answers, so they are handed to it as 200 here. The status on the
//    wire stays the real one for every other client.
(() => {
  if (window.__starmodel) return;
  const tab = (self.crypto && crypto.randomUUID) ? crypto.randomUUID()
    : Math.random().toString(36).slice(2) + Date.now().toString(36);
  const nativeFetch = window.fetch.bind(window);
  window.__starmodel = { tab };
  window.fetch = async (input, init = {}) => {
    const headers = new Headers(init.headers || undefined);
    if (!headers.has("Datastar-Request")) return nativeFetch(input, init);
    headers.set("X-StarModel-Tab", tab);
    const response = await nativeFetch(input, { ...init, headers });
    const type = response.headers.get("Content-Type") || "";
    if (response.status >= 400 && type.includes("text/event-stream")) {
      return new Response(response.body, { status: 200, statusText: "OK", headers: response.headers });
    }
    return response;
  };
})();
