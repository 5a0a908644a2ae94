// The review console's light JavaScript: live queue (server-sent events), keyboard shortcuts, drawing boxes.
(function () {
  "use strict";
  const page = window.SEAMLINE_PAGE;

  function text(tag, value, cls) {
    const el = document.createElement(tag);
    el.textContent = value;
    if (cls) el.className = cls;
    return el;
  }

  // Queue page: counts and the next items update live.
  if (page === "queue") {
    const live = document.getElementById("live");
    const source = new EventSource("/events");
    source.addEventListener("queue", (event) => {
      const snap = JSON.parse(event.data);
      for (const p of ["high", "medium", "low"]) document.getElementById("count-" + p).textContent = snap.queued[p];
      document.getElementById("count-in-review").textContent = snap.in_review.length;
      const rows = document.getElementById("queue-rows");
      rows.replaceChildren(...snap.next.map((item) => {
        const tr = document.createElement("tr");
        tr.append(text("td", item.priority, "prio " + item.priority), text("td", item.item_id), text("td", item.line_id), text("td", item.queued_at.slice(11, 19)));
        return tr;
      }));
      document.getElementById("in-review").replaceChildren(...snap.in_review.map((i) => text("li", i.item_id + " — " + i.claimed_by)));
      live.classList.add("on");
      const note = document.getElementById("empty-note");
      if (note && snap.queued_total > 0) note.remove();
    });
    source.onerror = () => live.classList.remove("on");
    source.addEventListener("logout", () => { source.close(); window.location.href = "/login"; });
    document.addEventListener("keydown", (e) => {
      if (e.key === "n" && !e.ctrlKey && !e.metaKey && !(e.target instanceof HTMLInputElement)) document.getElementById("take-next").click();
    });
  }

  // Item page: shortcuts and missed-defect boxes.
  if (page === "item") {
    const form = document.getElementById("decision-form");
    const missedInput = document.getElementById("missed");
    const list = document.getElementById("missed-list");
    const template = document.getElementById("missed-template");
    const missed = [];
    let drawing = false;

    function sync() {
      missedInput.value = JSON.stringify(missed.map((m) => ({
        view_index: m.view, box: m.box.map((v) => Math.round(v * 10) / 10), type: m.typeEl.value, severity: m.sevEl.value,
      })));
    }

    function addMissed(view, box, svg, rect) {
      const li = template.content.firstElementChild.cloneNode(true);
      const entry = { view, box, typeEl: li.querySelector(".missed-type"), sevEl: li.querySelector(".missed-severity"), rect };
      li.querySelector(".what").textContent = "missed defect on view " + view + " at [" + box.map(Math.round).join(", ") + "]";
      entry.typeEl.addEventListener("change", sync);
      entry.sevEl.addEventListener("change", sync);
      li.querySelector(".remove").addEventListener("click", () => {
        missed.splice(missed.indexOf(entry), 1);
        li.remove();
        rect.remove();
        sync();
      });
      missed.push(entry);
      list.append(li);
      sync();
    }

    function point(svg, event) {
      const p = svg.createSVGPoint();
      p.x = event.clientX;
      p.y = event.clientY;
      return p.matrixTransform(svg.getScreenCTM().inverse());
    }

    for (const svg of document.querySelectorAll("svg.view")) {
      let start = null;
      let rect = null;
      const [, , width, height] = svg.getAttribute("viewBox").split(" ").map(Number);
      const clamp = (v, hi) => Math.max(0, Math.min(hi, v));
      svg.addEventListener("mousedown", (e) => {
        if (!drawing || !form.querySelector("[name=decision]")) return;
        start = point(svg, e);
        rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
        rect.setAttribute("class", "missed-box");
        svg.append(rect);
        e.preventDefault();
      });
      svg.addEventListener("mousemove", (e) => {
        if (!start) return;
        const p = point(svg, e);
        rect.setAttribute("x", Math.min(start.x, p.x));
        rect.setAttribute("y", Math.min(start.y, p.y));
        rect.setAttribute("width", Math.abs(p.x - start.x));
        rect.setAttribute("height", Math.abs(p.y - start.y));
      });
      svg.addEventListener("mouseup", (e) => {
        if (!start) return;
        const p = point(svg, e);
        const box = [clamp(Math.min(start.x, p.x), width), clamp(Math.min(start.y, p.y), height), clamp(Math.max(start.x, p.x), width), clamp(Math.max(start.y, p.y), height)];
        start = null;
        if (box[2] - box[0] < 2 || box[3] - box[1] < 2) { rect.remove(); return; }
        addMissed(Number(svg.dataset.view), box, svg, rect);
        setDrawing(false);
      });
    }

    function setDrawing(on) {
      drawing = on;
      document.body.classList.toggle("drawing", on);
    }

    // A defect type other than normal needs a severity, and normal has none: keep the pair consistent.
    for (const select of document.querySelectorAll(".crop-type")) {
      select.addEventListener("change", () => {
        const severity = select.closest(".crop").querySelector(".crop-severity");
        if (select.value === "normal") severity.value = "none";
        else if (severity.value === "none") severity.value = "minor";
      });
    }

    document.addEventListener("keydown", (e) => {
      const typing = e.target instanceof HTMLInputElement && e.target.type !== "radio";
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        const next = document.getElementById("submit-next");
        if (next) { e.preventDefault(); next.click(); }
        return;
      }
      if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
      const radio = (v) => form.querySelector("input[name=decision][value=" + v + "]");
      if (e.key === "p" && radio("pass")) radio("pass").checked = true;
      else if (e.key === "r" && radio("reject")) radio("reject").checked = true;
      else if (e.key === "d") setDrawing(!drawing);
      else if (e.key === "Escape") setDrawing(false);
      else if (/^[1-9]$/.test(e.key)) {
        const select = document.querySelector(".crop-type[data-index='" + e.key + "']");
        if (select) select.focus();
      }
    });
    form.addEventListener("submit", sync);
  }
})();
