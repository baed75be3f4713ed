// StarModel uploads. A file input marked `data-sm-upload="<namespace>/<field>"` (and, for a
// record, `data-sm-key="<key>"`) sends the chosen file to the server in chunks as soon as it is
// picked. The input then dispatches `starmodel-upload-progress`, `starmodel-upload-done`
// (detail: {token, file, attached}) and `starmodel-upload-failed` (detail: {error, status}).
// `data-sm-token="<id>"` names a hidden input that receives the token (a form sends it);
// `data-sm-attach="false"` only stages the file (an event or a form sets the field with it).
// An element `data-sm-status` inside the input's parent shows the progress or the error.
(() => {
  const base = "/_starmodel/uploads";
  const tab = () => (window.__starmodel && window.__starmodel.tab) || "";
  const headers = (extra) => Object.assign({ "Datastar-Request": "true", "X-StarModel-Tab": tab() }, extra);

  function say(input, text, failed) {
    const status = input.parentElement && input.parentElement.querySelector("[data-sm-status]");
    if (status) {
      status.textContent = text;
      status.classList.toggle("text-destructive", !!failed);
    }
  }

  function fire(input, name, detail) {
    input.dispatchEvent(new CustomEvent(name, { detail, bubbles: true }));
  }

  async function answer(response) {
    let body = {};
    try { body = await response.json(); } catch (e) { body = {}; }
    if (!response.ok) {
      const errors = Object.values(body.errors || {});
      const error = new Error(errors[0] || body.error || `Upload refused (${response.status})`);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  async function upload(input, file) {
    const [target] = [input.dataset.smUpload];
    const begin = await answer(await fetch(base, {
      method: "POST",
      headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({
        target, key: input.dataset.smKey || null, name: file.name, size: file.size,
        type: file.type || "application/octet-stream", attach: input.dataset.smAttach !== "false",
      }),
    }));
    let offset = 0;
    let last = null;
    do {
      const part = file.slice(offset, offset + begin.chunk);
      const sent = await fetch(`${base}/${begin.ticket}?offset=${offset}`, {
        method: "PUT", headers: headers({ "Content-Type": "application/octet-stream" }), body: part,
      });
      if (sent.status === 409) {  // a chunk lost on the way: resume where the server is
        const body = await sent.json();
        if (typeof body.received !== "number" || body.received === offset) throw new Error(body.error);
        offset = body.received;
        continue;
      }
      last = await answer(sent);
      offset = last.received;
      const percent = file.size ? Math.floor(offset * 100 / file.size) : 100;
      say(input, `${file.name}: ${percent}%`);
      fire(input, "starmodel-upload-progress", { received: offset, size: file.size, percent });
    } while (offset < file.size || (file.size === 0 && last === null));
    return last;
  }

  document.addEventListener("change", async (event) => {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || input.type !== "file" || !input.dataset.smUpload) return;
    const file = input.files && input.files[0];
    if (!file) return;
    input.setAttribute("aria-busy", "true");
    try {
      const done = await upload(input, file);
      if (input.dataset.smToken) {
        const hidden = document.getElementById(input.dataset.smToken);
        if (hidden) {
          hidden.value = done.token;
          hidden.dispatchEvent(new Event("input", { bubbles: true }));
        }
      }
      say(input, `${file.name}: uploaded`);
      fire(input, "starmodel-upload-done", done);
    } catch (error) {
      say(input, error.message, true);
      fire(input, "starmodel-upload-failed", { error: error.message, status: error.status || 0 });
      input.value = "";
    } finally {
      input.removeAttribute("aria-busy");
    }
  });
})();
