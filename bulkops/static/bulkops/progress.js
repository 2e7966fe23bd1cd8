// Live progress of one operation (templates/bulkops/operation_detail.html).
// The WebSocket first; when it is unavailable or drops, polling the status API. When the
// operation finishes, the page as the server renders it (error table, buttons) replaces
// the live one. Without JavaScript the page refreshes itself instead.
(function () {
  "use strict";
  let root = document.querySelector("[data-operation]");
  if (!root) return;
  const FINAL = ["completed", "partial", "failed", "cancelled"];
  const POLL_MS = 2000;
  let done = FINAL.includes(root.dataset.status);
  let highWater = -1;
  let timer = null;
  let socket = null;

  function statusText(status) {
    return status.split("_").map((word) => word[0].toUpperCase() + word.slice(1)).join(" ");
  }

  function eta(iso) {
    if (!iso) return "—";
    const seconds = Math.max(0, Math.round((Date.parse(iso) - Date.now()) / 1000));
    return seconds < 120 ? `about ${seconds} s` : `about ${Math.round(seconds / 60)} min`;
  }

  function show(state) {
    if (state.processed_items !== undefined) {
      // Events can overtake each other (several workers, polling beside the socket).
      const reached = state.processed_items + (state.skipped_items || 0);
      if (reached < highWater) return;
      highWater = reached;
    }
    const values = { ...state };
    if ("estimated_completion" in state) values.estimated_completion = eta(state.estimated_completion);
    if (state.status) {
      values.status = statusText(state.status);
      root.dataset.status = state.status;
      root.querySelector(".status").dataset.status = state.status;
    }
    root.querySelectorAll("[data-field]").forEach((element) => {
      const value = values[element.dataset.field];
      if (value !== undefined && value !== null) element.textContent = value;
    });
    const bar = root.querySelector("progress");
    if (state.progress_percentage !== undefined) {
      bar.value = state.progress_percentage;
      bar.textContent = `${state.progress_percentage} %`;
    }
  }

  function finish() {
    if (done) return;
    done = true;
    clearInterval(timer);
    if (socket) socket.close();
    rerender();
  }

  // The page as the server renders it now: its buttons follow the status.
  function rerender() {
    fetch(location.href, { credentials: "same-origin" })
      .then((response) => response.text())
      .then((html) => {
        const page = new DOMParser().parseFromString(html, "text/html");
        const fresh = page.querySelector("[data-operation]");
        if (fresh) {
          root.replaceWith(fresh);
          root = fresh;
          document.title = page.title;
        }
      })
      .catch(() => {}); // the live numbers stay; a reload shows the rest
  }

  function receive(state) {
    show(state);
    if (FINAL.includes(state.status)) finish();
  }

  function poll() {
    if (timer || done) return;
    const tick = () =>
      fetch(root.dataset.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then((response) => (response.ok ? response.json() : Promise.reject(response.status)))
        .then(receive)
        .catch(() => {}); // try again at the next tick
    tick();
    timer = setInterval(tick, POLL_MS);
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    try {
      socket = new WebSocket(`${scheme}//${location.host}${root.dataset.wsPath}`);
    } catch (error) {
      poll();
      return;
    }
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "operation_completed") {
        const { type, final_status: status, ...counts } = message;
        receive({ ...counts, status });
      } else if (message.type === "status_changed") {
        // Approved, rejected, or a scheduled one started: other buttons apply now.
        receive(message);
        if (!done) rerender();
      } else {
        receive(message);
      }
    };
    socket.onclose = () => {
      if (!done) poll();
    };
  }

  if (!done) {
    if ("WebSocket" in window) connect();
    else poll();
  }
})();
