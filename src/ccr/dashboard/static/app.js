// claude-code-runner dashboard: live fragments, local times, confirmations, copy. Plain JS, no build step.
// Server-rendered fragments (Jinja, autoescaped) replace their container; nothing here builds HTML from data.
(function () {
  'use strict';

  // --- times: the server writes UTC, the reader sees local time ----------------------------------
  function localTimes(root) {
    root.querySelectorAll('time[datetime]').forEach(function (t) {
      var d = new Date(t.getAttribute('datetime'));
      if (!isNaN(d)) { t.textContent = d.toLocaleString(); t.title = t.getAttribute('datetime'); }
    });
  }

  function fmtDuration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 60) return seconds + 's';
    if (seconds < 3600) return Math.floor(seconds / 60) + 'm ' + String(seconds % 60).padStart(2, '0') + 's';
    return Math.floor(seconds / 3600) + 'h ' + String(Math.floor(seconds % 3600 / 60)).padStart(2, '0') + 'm';
  }

  // Only inside the live parts (header, table): a query over a 50,000-line transcript each second is not free.
  function tickDurations() {
    fragments.forEach(function (f) {
      f.el.querySelectorAll('[data-running-since]').forEach(function (el) {
        var start = new Date(el.getAttribute('data-running-since'));
        if (!isNaN(start)) el.textContent = fmtDuration((Date.now() - start) / 1000);
      });
    });
  }

  // --- live fragments: long-poll while the page is visible (healthchecks' way) ---------------------
  var fragments = [];
  function LiveFragment(el) {
    this.el = el;
    this.url = el.getAttribute('data-live');
    this.version = el.getAttribute('data-version');
    this.controller = null;
    this.failures = 0;
  }

  LiveFragment.prototype.poll = function () {
    var self = this;
    if (self.controller || document.visibilityState !== 'visible') return;
    var controller = new AbortController();
    self.controller = controller;
    var url = self.url + (self.url.indexOf('?') < 0 ? '?' : '&') + 'v=' + encodeURIComponent(self.version);
    fetch(url, { signal: controller.signal, credentials: 'same-origin', headers: { Accept: 'text/html' } })
      .then(function (response) {
        if (response.redirected || response.status === 401) { window.location.reload(); return null; }
        if (response.status === 204) return null;
        if (!response.ok) throw new Error('HTTP ' + response.status);
        var version = response.headers.get('X-Version');
        return response.text().then(function (html) {
          if (version !== null) self.version = version;
          self.replace(html);
        });
      })
      .then(function () { self.failures = 0; self.done(controller, 0); })
      .catch(function (err) {
        if (err && err.name === 'AbortError') { self.done(controller, -1); return; }
        self.failures += 1;
        self.done(controller, Math.min(30000, 1000 * Math.pow(2, self.failures)));
      });
  };

  LiveFragment.prototype.done = function (controller, delay) {
    var self = this;
    if (self.controller !== controller) return;
    self.controller = null;
    if (delay >= 0) setTimeout(function () { self.poll(); }, delay);
  };

  LiveFragment.prototype.stop = function () {
    if (this.controller) { var c = this.controller; this.controller = null; c.abort(); }
  };

  LiveFragment.prototype.replace = function (html) {
    // DOMParser leaves scripts inert; the CSP forbids inline ones anyway.
    var doc = new DOMParser().parseFromString('<body>' + html + '</body>', 'text/html');
    this.el.replaceChildren.apply(this.el, Array.from(doc.body.childNodes));  // a copy: moving empties the live list
    localTimes(this.el);
    tickDurations();
    this.el.dispatchEvent(new CustomEvent('ccr:refreshed', { bubbles: true }));
  };

  function startLive() {
    document.querySelectorAll('[data-live]').forEach(function (el) { fragments.push(new LiveFragment(el)); });
    document.addEventListener('visibilitychange', function () {
      fragments.forEach(function (f) {
        if (document.visibilityState === 'visible') { f.poll(); } else { f.stop(); }
      });
    });
    fragments.forEach(function (f) { f.poll(); });
  }

  // --- confirmations and copy (no inline handlers: the CSP allows none) ------------------------------
  document.addEventListener('submit', function (e) {
    var form = e.target;
    var question = form.getAttribute && form.getAttribute('data-confirm');
    if (question && !window.confirm(question)) e.preventDefault();
  });

  document.addEventListener('click', function (e) {
    var button = e.target.closest && e.target.closest('[data-copy]');
    if (!button) return;
    var input = document.getElementById(button.getAttribute('data-copy'));
    if (!input) return;
    function copied() { button.textContent = 'Copied'; setTimeout(function () { button.textContent = 'Copy'; }, 2000); }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(copied, function () { input.select(); });
    } else {
      input.select();
      try { if (document.execCommand('copy')) copied(); } catch (err) { /* selected: the reader copies */ }
    }
  });

  window.ccrLive = { fragments: fragments, localTimes: localTimes };

  document.addEventListener('DOMContentLoaded', function () {
    localTimes(document);
    startLive();
    tickDurations();
    setInterval(tickDurations, 1000);
  });
})();
