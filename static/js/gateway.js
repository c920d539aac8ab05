// Gateway pages: copy buttons, confirmations, usage charts and the playground.
// Server and model text is only ever set with textContent, never parsed as HTML.
(function () {
  "use strict";

  // Copy buttons: data-copy names the element whose text is copied.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (!source) { return; }
      var text = source.textContent;
      var done = function () {
        var label = button.textContent;
        button.textContent = button.getAttribute("data-copied") || label;
        window.setTimeout(function () { button.textContent = label; }, 1500);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done);
      } else {  // plain http: select the text so that Ctrl-C copies it
        var range = document.createRange();
        range.selectNodeContents(source);
        var selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        try { document.execCommand("copy"); done(); } catch (e) { /* the text stays selected */ }
      }
    });
  });

  // Forms that ask first (revoke a key, delete a route).
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });

  // Usage charts embedded by the server.
  var holder = document.getElementById("usage-figures");
  if (holder && window.Plotly) {
    var figures = JSON.parse(holder.textContent);
    document.querySelectorAll("#usage-charts [data-figure]").forEach(function (div) {
      var figure = figures[Number(div.getAttribute("data-figure"))];
      if (figure) { window.Plotly.newPlot(div, figure.data, figure.layout, {responsive: true, displaylogo: false}); }
    });
  }

  // Playground: a one-hour key per model, minted by the console; chat streamed from the gateway.
  var pg = document.getElementById("playground");
  if (!pg) { return; }
  var texts = JSON.parse(document.getElementById("pg-texts").textContent);
  var log = document.getElementById("pg-log");
  var stats = document.getElementById("pg-stats");
  var input = document.getElementById("pg-input");
  var select = document.getElementById("pg-model");
  var csrf = pg.querySelector("input[name=csrfmiddlewaretoken]") || document.querySelector("input[name=csrfmiddlewaretoken]");
  var keys = {};  // model -> {key, expires}
  var history = [];
  var controller = null;

  function line(who, text) {
    var row = document.createElement("div");
    var name = document.createElement("strong");
    name.textContent = who + ": ";
    var body = document.createElement("span");
    body.textContent = text;
    row.appendChild(name);
    row.appendChild(body);
    log.appendChild(row);
    log.scrollTop = log.scrollHeight;
    return body;
  }

  function keyFor(model) {
    var cached = keys[model];
    if (cached && cached.expires - Date.now() > 60000) { return Promise.resolve(cached.key); }
    stats.textContent = texts.minting;
    return fetch(pg.getAttribute("data-key-url"), {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf ? csrf.value : ""},
      body: JSON.stringify({model: model})
    }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) { throw new Error(body.detail || JSON.stringify(body)); }
        keys[model] = {key: body.key, expires: Date.parse(body.expires_at)};
        return body.key;
      });
    });
  }

  function send(event) {
    event.preventDefault();
    var model = select.value;
    var prompt = input.value.trim();
    if (!model || !prompt || controller) { return; }
    input.value = "";
    history.push({role: "user", content: prompt});
    line(texts.you, prompt);
    var out = line(texts.assistant, "");
    var started = 0, first = 0, chunks = 0, usage = null, answer = "";
    controller = new AbortController();
    keyFor(model).then(function (key) {
      started = performance.now();
      stats.textContent = "";
      return fetch(pg.getAttribute("data-gateway-url") + "/chat/completions", {
        method: "POST", signal: controller.signal,
        headers: {"Content-Type": "application/json", "Authorization": "Bearer " + key},
        body: JSON.stringify({model: model, messages: history, stream: true, stream_options: {include_usage: true}})
      });
    }).then(function (response) {
      if (!response.ok) {
        return response.text().then(function (text) {
          var message = text;
          try { message = JSON.parse(text).error.message; } catch (e) { /* not OpenAI's shape */ }
          throw new Error(response.status + " " + message);
        });
      }
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      function show() {
        var parts = [];
        if (first) { parts.push(texts.ttft + " " + Math.round(first - started) + " ms"); }
        var tokens = usage ? usage.completion_tokens : chunks;
        var seconds = (performance.now() - (first || started)) / 1000;
        if (first && seconds > 0 && tokens > 1) { parts.push((tokens / seconds).toFixed(1) + " " + texts.tokens_per_s); }
        stats.textContent = parts.join(" · ");
      }
      function pump() {
        return reader.read().then(function (step) {
          if (step.done) { return; }
          buffer += decoder.decode(step.value, {stream: true});
          var events = buffer.split(/\r?\n\r?\n/);
          buffer = events.pop();
          events.forEach(function (block) {
            block.split(/\r?\n/).forEach(function (raw) {
              if (raw.indexOf("data:") !== 0) { return; }
              var data = raw.slice(5).trim();
              if (!data || data === "[DONE]") { return; }
              var chunk;
              try { chunk = JSON.parse(data); } catch (e) { return; }
              if (chunk.error) { throw new Error(chunk.error.message || texts.error); }
              if (chunk.usage) { usage = chunk.usage; }
              var delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
              if (delta && delta.content) {
                if (!first) { first = performance.now(); }
                chunks += 1;
                answer += delta.content;
                out.textContent = answer;
              }
            });
          });
          show();
          log.scrollTop = log.scrollHeight;
          return pump();
        });
      }
      return pump().then(show);
    }).catch(function (error) {
      if (error.name === "AbortError") { stats.textContent = texts.stopped; return; }
      out.textContent = answer + " [" + texts.error + ": " + error.message + "]";
    }).then(function () {
      if (answer) { history.push({role: "assistant", content: answer}); } else { history.pop(); }
      controller = null;
    });
  }

  document.getElementById("pg-form").addEventListener("submit", send);
  document.getElementById("pg-stop").addEventListener("click", function () { if (controller) { controller.abort(); } });
  select.addEventListener("change", function () { history = []; log.textContent = ""; stats.textContent = ""; });
})();
