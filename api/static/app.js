// A little progressive enhancement for the autograder's pages: sortable tables, the
// upload form's checks, live status over server-sent events, regrade progress, and the
// manual grading page (rubric toggles, keyboard shortcuts, saving).
"use strict";

(function () {
  const FINAL = ["graded", "failed"];

  // -- sortable tables ---------------------------------------------------------------
  function cellValue(row, index, type) {
    const cell = row.cells[index];
    const raw = cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent.trim();
    if (type === "number") {
      return raw === "" ? null : Number(raw);
    }
    return raw.toLowerCase();
  }

  function initSortable(table) {
    const headRow = table.tHead.rows[table.tHead.rows.length - 1];
    const headers = Array.from(headRow.cells);
    const live = document.createElement("p");
    live.className = "small muted";
    live.setAttribute("role", "status");
    table.parentNode.insertAdjacentElement("afterend", live);
    headers.forEach(function (th, index) {
      const button = th.querySelector("button.sort");
      if (!button) return;
      button.addEventListener("click", function () {
        const ascending = th.getAttribute("aria-sort") !== "ascending";
        headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        const type = th.dataset.type || "text";
        const body = table.tBodies[0];
        const rows = Array.from(body.rows);
        rows.sort(function (a, b) {
          const x = cellValue(a, index, type);
          const y = cellValue(b, index, type);
          if (x === null && y === null) return 0;
          if (x === null) return 1;  // rows without a score stay at the bottom
          if (y === null) return -1;
          const order = type === "number" ? x - y : x.localeCompare(y);
          return ascending ? order : -order;
        });
        rows.forEach(function (r) { body.appendChild(r); });
        live.textContent = "Sorted by " + button.textContent.trim() + (ascending ? ", ascending." : ", descending.");
      });
    });
  }

  // -- the upload form ---------------------------------------------------------------
  function randomKey() {
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return "ui-" + Array.from(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  function megabytes(n) {
    return (n / (1024 * 1024)).toFixed(n < 1024 * 1024 ? 2 : 1);
  }

  function initUpload(form) {
    const input = form.querySelector("input[type=file]");
    const zone = document.getElementById("dropzone");
    const error = document.getElementById("upload-error");
    const chosen = document.getElementById("file-chosen");
    const progress = document.getElementById("upload-progress");
    const button = document.getElementById("upload-button");
    const maxBytes = Number(form.dataset.maxBytes);
    const suffixes = form.dataset.suffixes.split(" ");
    let key = randomKey();

    function problem(file) {
      if (!file) return "Choose a file first.";
      const name = file.name.toLowerCase();
      if (!suffixes.some(function (s) { return name.endsWith(s); })) {
        return "\u201c" + file.name + "\u201d is not a kind of file the grader takes: upload a " +
          suffixes.join(", ") + " file.";
      }
      if (file.size === 0) return "The file \u201c" + file.name + "\u201d is empty.";
      if (file.size > maxBytes) {
        return "The file is too large (" + megabytes(file.size) + " MB): the limit is " +
          megabytes(maxBytes) + " MB.";
      }
      return null;
    }

    function show(message) {
      error.textContent = message || "";
      error.hidden = !message;
      zone.classList.toggle("invalid", Boolean(message));
      input.setAttribute("aria-invalid", message ? "true" : "false");
    }

    input.addEventListener("change", function () {
      const file = input.files[0];
      key = randomKey();
      chosen.textContent = file ? "Selected: " + file.name + " (" + megabytes(file.size) + " MB)" : "";
      show(file ? problem(file) : null);
    });
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (event) {
        event.preventDefault();
        zone.classList.add("over");
      });
    });
    ["dragleave", "drop"].forEach(function (type) {
      zone.addEventListener(type, function (event) {
        event.preventDefault();
        zone.classList.remove("over");
      });
    });
    zone.addEventListener("drop", function (event) {
      const files = event.dataTransfer && event.dataTransfer.files;
      if (!files || files.length !== 1) {
        show("Drop exactly one file.");
        return;
      }
      input.files = files;
      input.dispatchEvent(new Event("change"));
    });

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      const file = input.files[0];
      const wrong = problem(file);
      if (wrong) {
        show(wrong);
        input.focus();
        return;
      }
      const data = new FormData();
      data.append("file", file, file.name);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("X-Requested-With", "fetch");
      xhr.setRequestHeader("Idempotency-Key", key);
      xhr.responseType = "json";
      xhr.upload.addEventListener("progress", function (ev) {
        if (ev.lengthComputable) progress.value = Math.round(100 * ev.loaded / ev.total);
      });
      function finished() {
        button.disabled = false;
        progress.hidden = true;
      }
      xhr.addEventListener("load", function () {
        const body = xhr.response || {};
        if (xhr.status === 202 && body.id) {
          chosen.textContent = "Uploaded; opening the submission\u2026";
          window.location.assign("/ui/submissions/" + encodeURIComponent(body.id));
          return;
        }
        finished();
        show(body.detail || "The upload failed (HTTP " + xhr.status + ").");
      });
      xhr.addEventListener("error", function () {
        finished();
        show("The upload failed: the server could not be reached. Try again.");
      });
      show(null);
      button.disabled = true;
      progress.value = 0;
      progress.hidden = false;
      xhr.send(data);
    });
  }

  // -- a submission's live status ------------------------------------------------------
  function initLive(section) {
    const note = document.getElementById("live-note");
    let source = null;

    function setStatus(status) {
      const badge = document.getElementById("status");
      badge.textContent = status;
      badge.className = "badge status-" + status;
      section.dataset.status = status;
    }

    function refresh() {
      return fetch(section.dataset.fragment, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(new Error("HTTP " + r.status)); })
        .then(function (html) { section.innerHTML = html; })
        .catch(function () { note.textContent = "Could not load the feedback; reload the page."; });
    }

    function follow() {
      if (source) source.close();
      note.textContent = "Live: this page updates by itself.";
      let last = null;
      source = new EventSource(section.dataset.events, { withCredentials: true });
      source.addEventListener("status", function (event) {
        const data = JSON.parse(event.data);
        setStatus(data.status);
        if (FINAL.indexOf(data.status) >= 0) {
          source.close();
          source = null;
          note.textContent = "";
          refresh();
        } else if (data.status !== last) {
          refresh();
        }
        last = data.status;
      });
      source.addEventListener("error", function () {
        if (source && source.readyState === EventSource.CLOSED) {
          note.textContent = "Live updates stopped; reload the page to see the latest status.";
        }
      });
    }

    document.addEventListener("autograder:regraded", function (event) {
      if (event.detail && event.detail.status) setStatus(event.detail.status);
      follow();
    });
    if (FINAL.indexOf(section.dataset.status) < 0) follow();
  }

  // -- regrades --------------------------------------------------------------------------
  // JSON to the pages' own routes (same-site cookie); the API's sentence on failure.
  function sendJSON(method, url, body) {
    return fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Requested-With": "fetch" },
      body: JSON.stringify(body),
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) throw new Error(data.detail || "The request failed (HTTP " + r.status + ").");
        return data;
      });
    });
  }

  function postJSON(url, body) {
    return sendJSON("POST", url, body);
  }

  function initRegradeAssignment(form) {
    const button = document.getElementById("regrade-button");
    const block = document.getElementById("regrade-progress-block");
    const bar = document.getElementById("regrade-progress");
    const status = document.getElementById("regrade-status");
    const error = document.getElementById("regrade-error");

    function poll(url) {
      fetch(url, { credentials: "same-origin" })
        .then(function (r) { return r.json().then(function (d) { if (!r.ok) throw new Error(d.detail); return d; }); })
        .then(function (b) {
          bar.max = Math.max(b.total, 1);
          bar.value = b.status === "done" ? bar.max : b.done + b.failed;
          const failed = b.failed ? ", " + b.failed + " could not be graded" : "";
          if (b.status === "done") {
            status.textContent = "Done: " + b.done + " of " + b.total + " regraded" + failed + ".";
            block.dataset.state = "done";
            button.disabled = false;
          } else {
            status.textContent = (b.done + b.failed) + " of " + b.total + " finished" + failed + "\u2026";
            window.setTimeout(function () { poll(url); }, 700);
          }
        })
        .catch(function (e) {
          error.textContent = e.message || "Lost track of the regrade; reload the page.";
          error.hidden = false;
          button.disabled = false;
        });
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      const exercise = form.querySelector("[name=exercise]").value;
      const reason = form.querySelector("[name=reason]").value;
      error.hidden = true;
      button.disabled = true;
      block.hidden = false;
      block.dataset.state = "running";
      bar.removeAttribute("value");
      status.textContent = "Starting the regrade\u2026";
      postJSON(form.dataset.url, { exercise: exercise || null, reason: reason })
        .then(function (data) {
          poll(form.dataset.progressUrl + encodeURIComponent(data.batch_id));
        })
        .catch(function (e) {
          block.hidden = true;
          button.disabled = false;
          error.textContent = e.message;
          error.hidden = false;
        });
    });
  }

  function initRegradeOne(form) {
    const status = document.getElementById("regrade-one-status");
    const button = form.querySelector("button");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      button.disabled = true;
      status.textContent = "Asking for a regrade\u2026";
      postJSON(form.dataset.url, { reason: form.querySelector("[name=reason]").value })
        .then(function (data) {
          status.textContent = "Regrade queued as job " + data.job_id.slice(0, 8) +
            ". The status above follows it; reload the page for the updated history.";
          document.dispatchEvent(new CustomEvent("autograder:regraded", { detail: data }));
        })
        .catch(function (e) { status.textContent = e.message; })
        .finally(function () { button.disabled = false; });
    });
  }

  // -- manual grading: rubric toggles, the score preview, saving, keyboard shortcuts ------
  function formatPoints(x) {
    const text = (Math.round(x * 1000) / 1000).toFixed(3).replace(/0+$/, "").replace(/\.$/, "");
    return text === "-0" ? "0" : text;
  }

  function initGrading(form) {
    const items = Array.from(form.querySelectorAll("button.rubric-item"));
    const adjustment = document.getElementById("grade-adjustment");
    const comment = document.getElementById("grade-comment");
    const preview = document.getElementById("score-preview");
    const status = document.getElementById("grade-status");
    const error = document.getElementById("grade-error");
    const button = document.getElementById("save-grade");
    const floor = Number(form.dataset.floor);
    const ceiling = Number(form.dataset.ceiling);
    const maxText = formatPoints(Number(form.dataset.maxScore));
    let dirty = false;
    let warned = false;

    function score() {
      let total = Number(adjustment.value) || 0;
      items.forEach(function (b) {
        if (b.getAttribute("aria-pressed") === "true") total += Number(b.dataset.points);
      });
      return Math.min(ceiling, Math.max(floor, total));
    }

    function changed() {
      dirty = true;
      warned = false;
      preview.textContent = formatPoints(score()) + " / " + maxText + " (not saved)";
      status.textContent = "";
    }

    function toggle(b) {
      b.setAttribute("aria-pressed", b.getAttribute("aria-pressed") === "true" ? "false" : "true");
      changed();
    }

    items.forEach(function (b) { b.addEventListener("click", function () { toggle(b); }); });
    adjustment.addEventListener("input", changed);
    comment.addEventListener("input", changed);

    function save() {
      if (button.disabled) return;  // one save at a time
      const adjust = adjustment.value.trim() === "" ? 0 : Number(adjustment.value);
      if (adjustment.validity.badInput || !Number.isFinite(adjust)) {
        error.textContent = "The adjustment must be a number.";
        error.hidden = false;
        adjustment.focus();
        return;
      }
      const applied = items.filter(function (b) { return b.getAttribute("aria-pressed") === "true"; })
        .map(function (b) { return b.dataset.item; });
      error.hidden = true;
      button.disabled = true;
      status.textContent = "Saving\u2026";
      sendJSON("PUT", form.dataset.url, { rubric: applied, adjustment: adjust, comment: comment.value })
        .then(function (data) {
          dirty = false;
          preview.textContent = formatPoints(data.score) + " / " + maxText;
          status.textContent = "Saved: " + formatPoints(data.score) + " / " + maxText + ".";
          const state = document.getElementById("answer-state");
          if (state) { state.textContent = "graded"; state.className = "badge status-graded"; }
          if (data.student) document.getElementById("answer-student").textContent = data.student;
          const entry = document.querySelector(".all-answers a[aria-current=page]");
          if (entry) {
            if (data.student) entry.textContent = data.student;
            const note = entry.parentNode.querySelector(".answer-score");
            if (note) {
              note.textContent = "graded, " + formatPoints(data.score) + " / " + maxText;
              note.className = "small answer-score";
            }
          }
          if (data.progress) {
            document.getElementById("graded-count").textContent = data.progress.graded;
            document.getElementById("grading-progress").value = data.progress.graded;
          }
        })
        .catch(function (e) {
          status.textContent = "";
          error.textContent = e.message;
          error.hidden = false;
        })
        .finally(function () { button.disabled = false; });
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      save();
    });

    function go(link) {
      if (!link) return;
      if (dirty && !warned) {
        warned = true;
        status.textContent = "This grade is not saved: press s to save it, or the same key again to leave without saving.";
        return;
      }
      window.location.assign(link.href);
    }

    function typing(target) {
      return target instanceof HTMLElement &&
        (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].indexOf(target.tagName) >= 0);
    }

    document.addEventListener("keydown", function (event) {
      if (event.defaultPrevented || event.altKey || event.metaKey) return;
      if (event.ctrlKey) {
        if (event.key === "Enter") { event.preventDefault(); save(); }
        return;
      }
      if (typing(event.target)) {
        if (event.key === "Escape") event.target.blur();
        return;
      }
      const key = event.key;
      if (event.repeat) return;  // a held key toggles or saves once
      // Arrows inside the answer scroll it (wide code, images); n and p still navigate.
      const scrolling = key.indexOf("Arrow") === 0 && event.target.closest && event.target.closest(".answer-body");
      if (scrolling) return;
      if (/^[1-9]$/.test(key) && items[Number(key) - 1]) {
        event.preventDefault();
        toggle(items[Number(key) - 1]);
      } else if (key === "a" || key === "c") {
        event.preventDefault();
        (key === "a" ? adjustment : comment).focus();
      } else if (key === "s") {
        event.preventDefault();
        save();
      } else if (key === "n" || key === "ArrowRight") {
        event.preventDefault();
        go(document.getElementById("next-answer"));
      } else if (key === "p" || key === "ArrowLeft") {
        event.preventDefault();
        go(document.getElementById("prev-answer"));
      }
    });
    window.addEventListener("beforeunload", function (event) {
      if (dirty && !warned) event.preventDefault();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table.sortable").forEach(initSortable);
    const upload = document.getElementById("upload-form");
    if (upload) initUpload(upload);
    const live = document.getElementById("feedback");
    if (live && live.dataset.events) initLive(live);
    const regrade = document.getElementById("regrade-form");
    if (regrade) initRegradeAssignment(regrade);
    const one = document.getElementById("regrade-one");
    if (one) initRegradeOne(one);
    const grading = document.getElementById("grade-form");
    if (grading) initGrading(grading);
  });
})();
