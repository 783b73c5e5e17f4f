/*
 * Switchboard chat widget: plain JavaScript, no build step, no dependencies.
 *
 * Embed it with a container and one script tag:
 *
 *   <div id="support-chat"></div>
 *   <script src="https://APPLIANCE/chat/static/widget.js" data-brand="lumen-goods"
 *           data-api-base="https://APPLIANCE" data-target="support-chat" defer></script>
 *
 * Settings, read from the container first, then the script tag:
 *   data-brand       the brand's slug (required)
 *   data-api-base    where the API lives; "" means this page's origin
 *   data-target      the container's id (default: a new div right after the script)
 *   data-agent-name, data-brand-name, data-max-chars   shown in the widget / input limit
 *   data-customer-id, data-customer-email, data-customer-signature   a customer the brand's
 *                    site has logged in: the id (or email) and its signature, computed on the
 *                    brand's server with its identity secret (docs/api.md, "Signed
 *                    identities"); data-customer-name a display name. None is needed for
 *                    an anonymous visitor.
 *
 * The widget talks to the public API only: POST /v1/widget/<brand>/conversations opens a
 * conversation and returns a token scoped to it; POST /v1/conversations/<id>/messages with
 * "Accept: text/event-stream" streams `delta` events, then one `message` event whose text is
 * authoritative, or an `error` event. EventSource cannot POST, so the stream is read from
 * fetch()'s ReadableStream.
 *
 * Replies are Markdown. The streamed pieces show as plain text; once the final message
 * arrives its `html` (rendered and sanitized by the appliance, see docs/api.md) replaces them,
 * so lists and bold show as such. The widget never turns text into HTML itself.
 *
 * The container exposes its state for pages and tests: data-state (opening, ready, streaming,
 * ended, error) and, once a conversation is open, data-conversation-id.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script) {
    return;
  }

  var STORAGE_PREFIX = "switchboard-chat:";

  /** An error whose message is fit to show the customer. */
  function WidgetError(message, status) {
    this.message = message;
    this.status = status || 0;
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      node.setAttribute(name, attrs[name]);
    });
    [].concat(children || []).forEach(function (child) {
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function findContainer() {
    var id = script.dataset.target;
    var found = id ? document.getElementById(id) : null;
    if (found) {
      return found;
    }
    var created = el("div");
    script.parentNode.insertBefore(created, script.nextSibling);
    return created;
  }

  function loadStyles() {
    var href = new URL("widget.css", script.src).href;
    var links = document.querySelectorAll("link[rel=stylesheet]");
    for (var i = 0; i < links.length; i++) {
      if (links[i].href === href) {
        return;
      }
    }
    document.head.appendChild(el("link", { rel: "stylesheet", href: href }));
  }

  /** The API's error shape is {"error": {"message", "code", ...}, "request_id"}. */
  function errorMessage(body, status) {
    var code = body && body.error ? body.error.code : "";
    if (code === "conversation_closed") {
      return "This conversation has ended.";
    }
    if (code === "invalid_identity_signature" || code === "identity_signature_required") {
      // The page's sign-in, not the customer, is at fault: the message stays generic.
      return "We couldn't confirm that you're signed in. Please sign in again and reopen the chat.";
    }
    if (status === 401) {
      return "This chat session has expired.";
    }
    if (body && body.error && body.error.message) {
      return "Sorry, that didn't work: " + body.error.message;
    }
    if (status >= 500) {
      return "Sorry, the chat service had a problem. Please try again in a moment.";
    }
    return "Sorry, that didn't work (error " + status + ").";
  }

  function describe(error) {
    if (error instanceof WidgetError) {
      return error.message;
    }
    // fetch() rejects with a TypeError when the network or the server is unreachable.
    return "Sorry, the chat service can't be reached. Check your connection and try again.";
  }

  /** Retries of one request while the server says it is busy, before the error is shown. */
  var BUSY_RETRIES = 5;
  /** The longest wait between two tries, in seconds. */
  var MAX_BACKOFF_S = 30;

  /** Whether the server asked us to send the same request again later: over a rate (429),
   *  saturated (503), or the same message still being answered (409 idempotency_in_progress). */
  async function isBusy(response) {
    if (response.status === 429 || response.status === 503) {
      return true;
    }
    if (response.status !== 409) {
      return false;
    }
    var body = await readJson(response.clone());
    return !!(body && body.error && body.error.code === "idempotency_in_progress");
  }

  /** Seconds before try `attempt` + 1: the server's Retry-After or an exponential backoff
   *  with jitter (so that many widgets do not come back at once), whichever is longer. */
  function retryDelay(response, attempt) {
    var asked = parseInt(response.headers.get("Retry-After") || "", 10);
    var backoff = Math.min(MAX_BACKOFF_S, Math.pow(2, attempt)) * (0.5 + Math.random() / 2);
    return Math.min(MAX_BACKOFF_S, Math.max(isNaN(asked) ? 1 : asked, backoff));
  }

  /** A fresh Idempotency-Key: a retry of the same message reuses it, so it runs once. */
  function newKey() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  async function readJson(response) {
    try {
      return await response.json();
    } catch (ignored) {
      return null;
    }
  }

  /** One SSE block ("event: x\ndata: y") as {name, data}; null for comments or no data. */
  function parseEvent(block) {
    var name = "message";
    var data = [];
    block.split("\n").forEach(function (line) {
      if (!line || line.charAt(0) === ":") {
        return;
      }
      var colon = line.indexOf(":");
      var field = colon === -1 ? line : line.slice(0, colon);
      var value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") {
        name = value;
      } else if (field === "data") {
        data.push(value);
      }
    });
    return data.length ? { name: name, data: data.join("\n") } : null;
  }

  /** Call onEvent for each Server-Sent Event of a fetch() response, as it arrives. */
  async function readEvents(response, onEvent) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    try {
      for (;;) {
        var chunk = await reader.read();
        buffer += chunk.done ? decoder.decode() : decoder.decode(chunk.value, { stream: true });
        // Normalise line ends; a lone "\r" at the end may be half of a "\r\n" still to come.
        buffer = buffer.replace(/\r\n|\r(?!$)/g, "\n");
        if (chunk.done) {
          buffer += "\n\n";
        }
        var end;
        while ((end = buffer.indexOf("\n\n")) !== -1) {
          var event = parseEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (event) {
            onEvent(event);
          }
        }
        if (chunk.done) {
          return;
        }
      }
    } finally {
      reader.cancel().catch(function () {});
    }
  }

  function parseData(event) {
    try {
      return JSON.parse(event.data);
    } catch (ignored) {
      throw new WidgetError("Sorry, the reply could not be read. Please try again.");
    }
  }

  function Widget(root, config) {
    this.root = root;
    this.config = config;
    this.conversationId = null;
    this.token = null;
    this.storageKey = STORAGE_PREFIX + config.apiBase + ":" + config.brand;
    this.build();
  }

  Widget.prototype.build = function () {
    var config = this.config;
    var uid = "sbw-" + Math.random().toString(36).slice(2, 8);
    this.log = el("div", {
      class: "sbw-log", role: "log", "aria-live": "polite", "aria-relevant": "additions",
      "aria-label": "Conversation with " + config.agentName, tabindex: "0",
    });
    this.status = el("p", { class: "sbw-status", role: "status" });
    this.input = el("textarea", {
      id: uid + "-input", name: "text", rows: "2", maxlength: String(config.maxChars),
      placeholder: "Type your message…", "aria-describedby": uid + "-help", autocomplete: "off",
    });
    this.send = el("button", { type: "submit", class: "sbw-send" }, "Send");
    this.form = el("form", { class: "sbw-form" }, [
      el("label", { for: uid + "-input", class: "sbw-visually-hidden" },
        "Message " + config.agentName),
      this.input,
      this.send,
      el("p", { id: uid + "-help", class: "sbw-visually-hidden" },
        "Press Enter to send, Shift+Enter for a new line."),
    ]);
    var header = el("div", { class: "sbw-header" }, [
      el("span", { class: "sbw-avatar", "aria-hidden": "true" }, config.agentName.charAt(0)),
      el("div", { class: "sbw-heading" }, [
        el("p", { class: "sbw-title" }, config.agentName),
        el("p", { class: "sbw-subtitle" },
          config.brandName ? config.brandName + " · virtual assistant" : "Virtual assistant"),
      ]),
    ]);
    this.root.textContent = "";
    this.root.classList.add("sbw");
    this.root.setAttribute("aria-label", "Chat with " + config.agentName);
    this.root.setAttribute("role", "region");
    [header, this.log, this.status, this.form].forEach(this.root.appendChild, this.root);

    var self = this;
    this.form.addEventListener("submit", function (event) {
      event.preventDefault();
      self.submit();
    });
    this.input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        self.submit();
      }
    });
  };

  Widget.prototype.setState = function (state) {
    this.root.dataset.state = state;
    var idle = state === "ready";
    this.input.disabled = !idle;
    this.send.disabled = !idle;
    if (state === "streaming") {
      // Screen readers announce the reply once, when it is complete, not every fragment.
      this.log.setAttribute("aria-busy", "true");
    } else {
      this.log.removeAttribute("aria-busy");
    }
  };

  /** A new bubble showing `message` ({role, text, html}; see show()). */
  Widget.prototype.addMessage = function (message) {
    var role = message.role;
    var who = { customer: "You", agent: this.config.agentName, human: "Support team" }[role];
    var item = el("div", { class: "sbw-msg sbw-" + role }, [
      el("span", { class: "sbw-who" }, who || ""),
      el("div", { class: "sbw-text" }),
    ]);
    this.log.appendChild(item);
    this.show(item, message);
    return item;
  };

  /** Plain text, e.g. a reply while it streams. */
  Widget.prototype.setText = function (item, text) {
    var node = item.querySelector(".sbw-text");
    node.classList.remove("sbw-markup");
    node.textContent = text;
    this.scroll();
  };

  /** A message as the API's sanitized `html` where it has one, else as its plain text. */
  Widget.prototype.show = function (item, message) {
    if (typeof message.html !== "string") {
      this.setText(item, message.text || "");
      return;
    }
    var node = item.querySelector(".sbw-text");
    node.classList.add("sbw-markup");
    // Safe: the appliance renders Markdown with raw HTML off and sanitizes the result
    // against an allow-list (appliance/web/markup.py); the text itself is never parsed here.
    node.innerHTML = message.html;
    this.scroll();
  };

  /** Under an agent reply: the knowledge it is grounded in, linked where it lives on the web. */
  Widget.prototype.setSources = function (item, citations) {
    var old = item.querySelector(".sbw-sources");
    if (old) {
      old.remove();
    }
    if (!citations || !citations.length) {
      return;
    }
    var parts = ["Sources: "];
    citations.forEach(function (citation, index) {
      if (index) {
        parts.push(" · ");
      }
      var web = /^https?:\/\//.test(citation.location || "");
      parts.push(web
        ? el("a", { href: citation.location, target: "_blank", rel: "noopener" }, citation.title)
        : el("span", {}, citation.title));
    });
    item.appendChild(el("p", { class: "sbw-sources" }, parts));
    this.scroll();
  };

  /** Under an answer: "Did this solve it?"; a yes then asks for a 1-5 rating. The answers go
   * to POST /v1/conversations/<id>/feedback (the latest counts). */
  Widget.prototype.askFeedback = function (item) {
    var self = this;
    var box = el("div", { class: "sbw-feedback sbw-feedback-ask", role: "group",
                          "aria-label": "Did this solve it?" });
    function choose(label, resolved) {
      var button = el("button", { type: "button", class: "sbw-action" }, label);
      button.addEventListener("click", function () {
        self.sendFeedback(box, { resolved: resolved }, resolved
          ? null : "Sorry about that. Tell me more, or ask for a colleague.");
      });
      return button;
    }
    box.appendChild(el("span", {}, "Did this solve it?"));
    box.appendChild(choose("Yes", true));
    box.appendChild(choose("No", false));
    item.appendChild(box);
    this.scroll();
  };

  Widget.prototype.askRating = function (box) {
    var self = this;
    box.textContent = "";
    box.classList.add("sbw-feedback-ask");
    box.setAttribute("aria-label", "Rate this chat from 1 to 5");
    box.appendChild(el("span", {}, "Glad it helped! How would you rate this chat?"));
    [1, 2, 3, 4, 5].forEach(function (score) {
      var button = el("button", { type: "button", class: "sbw-action sbw-rate",
                                  "aria-label": score + " out of 5" }, String(score));
      button.addEventListener("click", function () {
        self.sendFeedback(box, { resolved: true, csat: score }, "Thanks for your rating!");
      });
      box.appendChild(button);
    });
  };

  /** POST feedback; then thank the customer (`thanks`), or ask for a rating after a yes. */
  Widget.prototype.sendFeedback = async function (box, body, thanks) {
    box.querySelectorAll("button").forEach(function (button) { button.disabled = true; });
    try {
      var response = await fetch(
        this.url("/v1/conversations/" + encodeURIComponent(this.conversationId) + "/feedback"),
        {
          method: "POST",
          headers: { Accept: "application/json", "Content-Type": "application/json",
                     Authorization: "Bearer " + this.token },
          body: JSON.stringify(body),
        }
      );
      if (!response.ok) {
        throw new WidgetError(errorMessage(await readJson(response), response.status),
                              response.status);
      }
    } catch (error) {
      box.querySelectorAll("button").forEach(function (button) { button.disabled = false; });
      this.showError(describe(error));
      return;
    }
    if (body.resolved && body.csat === undefined) {
      this.askRating(box);
      return;
    }
    box.classList.remove("sbw-feedback-ask");
    box.removeAttribute("role");
    box.textContent = thanks || "Thanks for letting us know.";
    this.scroll();
  };

  Widget.prototype.scroll = function () {
    this.log.scrollTop = this.log.scrollHeight;
  };

  /** Show an error in the conversation; `action` adds a button, e.g. to retry. */
  Widget.prototype.showError = function (message, action) {
    var item = el("div", { class: "sbw-msg sbw-error", role: "alert" }, [
      el("p", { class: "sbw-text" }, message),
    ]);
    if (action) {
      var button = el("button", { type: "button", class: "sbw-action" }, action.label);
      button.addEventListener("click", function () {
        item.remove();
        action.run();
      });
      item.appendChild(button);
    }
    this.log.appendChild(item);
    this.scroll();
  };

  /** fetch(url, options), sent again while the server is busy (see isBusy), honouring its
   *  Retry-After and backing off; the status line says "Busy, retrying" meanwhile. Resolves
   *  with the last response. */
  Widget.prototype.fetchRetrying = async function (url, options) {
    for (var attempt = 0; ; attempt++) {
      var response = await fetch(url, options);
      if (attempt >= BUSY_RETRIES || !(await isBusy(response))) {
        return response;
      }
      var seconds = retryDelay(response, attempt);
      var shown = this.status.textContent;
      this.root.dataset.busy = "true";
      this.status.textContent = "Busy, retrying in " + Math.ceil(seconds) + " s…";
      await new Promise(function (resolve) { setTimeout(resolve, seconds * 1000); });
      delete this.root.dataset.busy;
      this.status.textContent = shown;
    }
  };

  Widget.prototype.url = function (path) {
    return this.config.apiBase + path;
  };

  Widget.prototype.remember = function () {
    try {
      sessionStorage.setItem(this.storageKey, JSON.stringify({
        id: this.conversationId, token: this.token,
      }));
    } catch (ignored) { /* storage may be off (private mode, sandboxed frames) */ }
  };

  Widget.prototype.remembered = function () {
    try {
      var saved = JSON.parse(sessionStorage.getItem(this.storageKey) || "null");
      return saved && saved.id && saved.token ? saved : null;
    } catch (ignored) {
      return null;
    }
  };

  Widget.prototype.forget = function () {
    try {
      sessionStorage.removeItem(this.storageKey);
    } catch (ignored) { /* see remember() */ }
  };

  Widget.prototype.opened = function (id, token) {
    this.conversationId = id;
    this.token = token;
    this.root.dataset.conversationId = id;
    this.remember();
  };

  /** Pick up this tab's open conversation after a reload; false if there is none. */
  Widget.prototype.resume = async function () {
    var saved = this.remembered();
    if (!saved) {
      return false;
    }
    try {
      var response = await fetch(this.url("/v1/conversations/" + encodeURIComponent(saved.id)), {
        headers: { Accept: "application/json", Authorization: "Bearer " + saved.token },
      });
      var body = response.ok ? await readJson(response) : null;
      if (!body || body.status === "closed" || !Array.isArray(body.messages)) {
        this.forget();
        return false;
      }
      this.opened(saved.id, saved.token);
      body.messages.forEach(function (message) {
        this.setSources(this.addMessage(message), message.citations);
      }, this);
      return true;
    } catch (ignored) {
      return false;
    }
  };

  Widget.prototype.open = async function () {
    this.setState("opening");
    this.status.textContent = "Connecting…";
    try {
      if (!(await this.resume())) {
        var response = await this.fetchRetrying(
          this.url("/v1/widget/" + encodeURIComponent(this.config.brand) + "/conversations"),
          {
            method: "POST",
            headers: { Accept: "application/json", "Content-Type": "application/json" },
            body: JSON.stringify({ customer: this.config.customer }),
          }
        );
        var body = await readJson(response);
        if (!response.ok || !body || !body.token) {
          throw new WidgetError(errorMessage(body, response.status), response.status);
        }
        this.opened(body.id, body.token);
        this.addMessage({ role: "agent", text: body.greeting.text, html: body.greeting.html });
      }
      this.status.textContent = "";
      this.setState("ready");
    } catch (error) {
      this.status.textContent = "";
      this.setState("error");
      this.showError(describe(error), { label: "Try again", run: this.open.bind(this) });
    }
  };

  /** Start over after the conversation ended or its token expired. */
  Widget.prototype.restart = function () {
    this.forget();
    this.conversationId = this.token = null;
    delete this.root.dataset.conversationId;
    this.log.textContent = "";
    this.open();
  };

  Widget.prototype.submit = function () {
    var text = this.input.value.trim();
    if (!text || this.root.dataset.state !== "ready") {
      return;
    }
    this.reply(text);
  };

  /** Send the customer's text and stream the agent's reply into a new bubble. */
  Widget.prototype.reply = async function (text) {
    var hadFocus = document.activeElement === this.input;
    this.log.querySelectorAll(".sbw-feedback-ask").forEach(function (node) {
      node.remove(); // a new message answers the question for us
    });
    var mine = this.addMessage({ role: "customer", text: text });
    var answer = this.addMessage({ role: "agent", text: "" });
    answer.classList.add("sbw-pending");
    this.input.value = "";
    this.setState("streaming");
    this.status.textContent = this.config.agentName + " is typing…";
    var next = "ready";
    try {
      var result = await this.stream(text, answer);
      answer.classList.remove("sbw-pending");
      this.show(answer, result.message);
      this.setSources(answer, result.message.citations);
      answer.dataset.messageId = result.message.id;
      if (result.message.citations && result.message.citations.length) {
        this.askFeedback(answer);
      }
      if (result.conversation && result.conversation.status === "closed") {
        next = "ended";
      }
    } catch (error) {
      // The turn failed as a whole (nothing was saved): hand the text back to resend.
      answer.remove();
      mine.remove();
      if (!this.input.value) {
        this.input.value = text;
      }
      var gone = error instanceof WidgetError && [401, 404, 409].indexOf(error.status) !== -1;
      next = gone ? "ended" : "ready";
      this.showError(describe(error), gone ? {
        label: "Start a new conversation", run: this.restart.bind(this),
      } : null);
    }
    this.status.textContent = "";
    this.setState(next);
    if (next === "ready" && hadFocus) {
      this.input.focus();
    }
  };

  /** POST the message; resolve with the final reply body, rendering deltas as they come. */
  Widget.prototype.stream = async function (text, answer) {
    var path = "/v1/conversations/" + encodeURIComponent(this.conversationId) + "/messages";
    var response = await this.fetchRetrying(this.url(path), {
      method: "POST",
      headers: {
        Accept: "text/event-stream",
        "Content-Type": "application/json",
        Authorization: "Bearer " + this.token,
        "Idempotency-Key": newKey(),
      },
      body: JSON.stringify({ text: text }),
    });
    if (!response.ok) {
      throw new WidgetError(errorMessage(await readJson(response), response.status),
        response.status);
    }
    if ((response.headers.get("Content-Type") || "").indexOf("text/event-stream") !== 0) {
      return await response.json();
    }
    var self = this;
    var streamed = "";
    var result = null;
    await readEvents(response, function (event) {
      var data = parseData(event);
      if (event.name === "delta") {
        streamed += data.text || "";
        self.setText(answer, streamed);
      } else if (event.name === "message") {
        result = data;
      } else if (event.name === "error") {
        throw new WidgetError(errorMessage(data, 500));
      }
    });
    if (!result || !result.message) {
      throw new WidgetError("Sorry, the reply was cut off. Please send your message again.");
    }
    return result;
  };

  var root = findContainer();

  function setting(name, fallback) {
    var value = root.dataset[name];
    if (value === undefined) {
      value = script.dataset[name];
    }
    return value === undefined ? fallback : value;
  }

  /** The customer fields that were set: an empty attribute is no value. */
  function customerOf(fields) {
    var customer = {};
    Object.keys(fields).forEach(function (name) {
      if (fields[name]) {
        customer[name] = fields[name];
      }
    });
    return customer;
  }

  var config = {
    brand: setting("brand", ""),
    apiBase: setting("apiBase", "").replace(/\/+$/, ""),
    agentName: setting("agentName", "") || "Assistant",
    brandName: setting("brandName", ""),
    maxChars: parseInt(setting("maxChars", ""), 10) || 4000,
    customer: customerOf({
      id: setting("customerId", ""),
      email: setting("customerEmail", ""),
      name: setting("customerName", ""),
      signature: setting("customerSignature", ""),
    }),
  };
  if (!config.brand) {
    root.textContent = "Chat unavailable: the widget's script tag needs data-brand.";
    return;
  }
  loadStyles();
  new Widget(root, config).open();
})();
