// The transcript's event stream, run in a Web Worker: EventSource parsing of a long backlog (50,000
// lines, tens of MB) then costs the page nothing. Lines go to the page in batches, each line once:
// a line at or below the last seq seen is dropped, and a new connection starts after that seq (the
// browser's own reconnects send Last-Event-ID). Without workers the page runs this same code itself.
(function (global) {
  'use strict';

  var BATCH_MS = 8;

  function createStream(post) {
    var es = null;
    var url = '';
    var lastSeq = 0;
    var batch = [];
    var timer = null;
    var retryTimer = null;
    var retries = 0;
    var ended = false;

    function flush() {
      timer = null;
      if (batch.length) { post({ type: 'lines', lines: batch }); batch = []; }
    }

    function close() {
      if (es) { es.close(); es = null; }
      if (retryTimer) { clearTimeout(retryTimer); retryTimer = null; }
    }

    function open() {
      close();
      ended = false;
      var mine = new EventSource(url + (lastSeq ? '?after=' + lastSeq : ''));
      es = mine;
      mine.addEventListener('open', function () { post({ type: 'state', state: 'live' }); });
      mine.addEventListener('line', function (e) {
        var seq = parseInt(e.lastEventId, 10);
        if (!(seq > lastSeq)) return;
        lastSeq = seq;
        retries = 0;
        batch.push([seq, e.data]);
        if (!timer) timer = setTimeout(flush, BATCH_MS);
      });
      mine.addEventListener('end', function () {
        ended = true;
        if (timer) { clearTimeout(timer); }
        flush();
        close();
        post({ type: 'end', lastSeq: lastSeq });
      });
      mine.addEventListener('error', function () {
        if (es !== mine || ended) return;
        post({ type: 'state', state: 'reconnecting' });
        if (mine.readyState === 2) {  // CLOSED: the browser gave up (an HTTP error); retry, backing off
          retries += 1;
          retryTimer = setTimeout(open, Math.min(30000, 1000 * Math.pow(2, retries)));
        }
      });
    }

    return function command(msg) {
      if (msg.type === 'open') { url = msg.url; lastSeq = Math.max(lastSeq, msg.after || 0); open(); }
      else if (msg.type === 'reconnect') { open(); }
      else if (msg.type === 'close') { close(); }
    };
  }

  if (typeof global.WorkerGlobalScope !== 'undefined' && global instanceof global.WorkerGlobalScope) {
    var command = createStream(function (msg) { global.postMessage(msg); });
    global.onmessage = function (e) { command(e.data); };
  } else {
    global.ccrCreateStream = createStream;
  }
})(self);
