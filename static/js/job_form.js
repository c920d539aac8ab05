// Create-job page: ask the API where the job would be placed, before it is submitted.
(function () {
  var form = document.getElementById("job-form");
  var body = document.getElementById("preview-body");
  // Translated words come from the page's data attributes (no inline script under the CSP).
  var t = document.getElementById("placement-preview").dataset;
  var timer = null;

  function pairs(text) {
    var out = {};
    (text || "").split("\n").forEach(function (line) {
      line = line.trim();
      if (!line) return;
      var i = line.indexOf("=");
      if (i > 0) out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    });
    return out;
  }

  function payload() {
    var f = form.elements;
    return {
      name: f.name.value || "preview", model_version: f.model_version.value, engine: f.engine.value,
      replicas: +f.replicas.value, accelerators_per_replica: +f.accelerators_per_replica.value,
      nodes_per_replica: +f.nodes_per_replica.value, placement: f.placement.value,
      node_selector: pairs(f.node_selector.value),
      extra_args: f.extra_args.value.split("\n").filter(function (s) { return s.trim(); }),
      env: pairs(f.env.value),
      options: (function () { try { return JSON.parse(f.options.value || "{}"); } catch (e) { return {}; } })()
    };
  }

  // Server text (node names, the reason) is set as text, never parsed as HTML.
  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  function percent(value) {
    return value === null || value === undefined ? "—" : Math.round(value) + " %";
  }

  // One line per chosen accelerator: its memory, current load and who holds it (server words).
  function accelerator(nodeName, a) {
    var line = el("li", nodeName + " · " + a.label + (a.model ? " (" + a.model + ")" : "") + ": " +
      (a.memory_text ? a.memory_text + ", " : "") + t.load + " " + percent(a.utilization_percent));
    if (a.holders.length) {
      line.appendChild(el("div", t.heldBy + " " + a.holders.map(function (h) { return h.text; }).join("; "), "small"));
    }
    if (a.saturated) { line.className = "warning-text"; }
    return line;
  }

  function render(result) {
    var nodes = [];
    nodes.push(el("p", result.summary, result.placeable ? "" : "warning-text"));
    if (result.memory_per_accelerator) {
      nodes.push(el("p", t.perAcc + ": " + result.memory_per_accelerator));
    }
    if (result.cpu_serving && result.memory_per_replica) {
      nodes.push(el("p", t.perReplica + ": " + result.memory_per_replica));
    }
    // CPU serving: the cores each member gets ("0-3"), as vLLM's thread binding will read them.
    function coreList(cores) {
      var runs = [], start = null, prev = null;
      cores.forEach(function (c) {
        if (prev !== null && c === prev + 1) { prev = c; return; }
        if (start !== null) runs.push(start === prev ? String(start) : start + "-" + prev);
        start = prev = c;
      });
      if (start !== null) runs.push(start === prev ? String(start) : start + "-" + prev);
      return runs.join(",");
    }
    result.replicas.forEach(function (members, r) {
      nodes.push(el("div", t.replica + " " + r));
      var list = el("ul");
      members.forEach(function (m) {
        if (!m.accelerators.length) { list.appendChild(el("li", m.node_name + " · " + (m.cpu_cores && m.cpu_cores.length ? t.cores + " " + coreList(m.cpu_cores) : "CPU"))); }
        m.accelerators.forEach(function (a) { list.appendChild(accelerator(m.node_name, a)); });
      });
      nodes.push(list);
    });
    (result.warnings || []).forEach(function (w) { nodes.push(el("p", w, "errorlist")); });
    if (result.reason) nodes.push(el("p", t.none + ": " + result.reason, "errorlist"));
    body.replaceChildren.apply(body, nodes);
  }

  function refresh() {
    if (!form.elements.model_version.value) return;
    var csrf = form.elements.csrfmiddlewaretoken.value;
    fetch("/api/v1/jobs/preview-placement/", {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf},
      body: JSON.stringify(payload())
    }).then(function (r) { return r.json().then(function (j) { return [r.status, j]; }); })
      .then(function (pair) {
        if (pair[0] === 200) render(pair[1]);
        else body.textContent = Object.keys(pair[1]).map(function (k) { return k + ": " + pair[1][k]; }).join("; ");
      });
  }

  form.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(refresh, 300); });
  form.addEventListener("change", function () { clearTimeout(timer); timer = setTimeout(refresh, 100); });
  refresh();
})();
