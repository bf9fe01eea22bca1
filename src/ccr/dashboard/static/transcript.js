// The live transcript: /task/{id}/events (Server-Sent Events, id = line seq) drawn by event type.
// Rules: every piece of text goes in through textContent (never innerHTML); a line is drawn once
// (lines at or below the last seq seen are dropped, so a reconnect never duplicates); unknown events
// are shown raw, never dropped; the page follows the end only while the reader is at the bottom.
(function () {
  'use strict';

  var root = document.getElementById('transcript');
  if (!root) return;

  var TEXT_CUT = 4000;        // characters of a tool result / long text shown before "show all"
  var LINES_CUT = 40;         // lines of the same
  // Script time per animation frame for drawing. Style and layout of what was drawn come on top, so the
  // budget adapts: it shrinks when frames run long and grows back when they are short.
  var BUDGET_MIN_MS = 2, BUDGET_MAX_MS = 12;
  var INPUT_PAUSE_MS = 150;
  var BOTTOM_SLACK_PX = 48;
  var CHUNK_LINES = 200;      // top-level entries per chunk; off-screen chunks skip layout and paint

  var taskId = root.getAttribute('data-task');
  var stateEl = document.getElementById('stream-state');
  var jumpEl = document.getElementById('jump-end');

  var state = {
    lastSeq: 0,         // highest seq received (dedupe key)
    drawn: 0,           // lines drawn
    queue: [],          // [seq, data] waiting for a frame
    head: 0,            // index of the next queued line
    scheduled: false,
    ended: false,
    firstLinesAt: null, // performance.now() when the first lines arrived (for the benchmark)
    tools: new Map(),   // tool_use id -> {card, children}
    taskTools: new Map(), // subagent task_id -> the tool_use id of its Agent call
    cwd: '',            // from the init event: file paths are shown relative to it
    budget: 8,          // ms of drawing per frame (adaptive)
    inputAt: -1e9,      // when the reader last clicked, typed or scrolled
    lastFrame: 0,
    chunk: null,        // the chunk top-level entries go into
    chunkSize: 0,
    follow: root.getAttribute('data-terminal') !== 'true',
    lastScrollTop: 0,
  };

  // --- small DOM helpers ----------------------------------------------------------------------------
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function link(href, text) {
    var s = String(href || '');
    if (!/^https?:\/\//i.test(s)) return el('span', 'mono', text || s);
    var a = el('a', null, text || s);
    a.href = s;
    a.rel = 'noopener noreferrer';
    a.target = '_blank';
    return a;
  }

  function str(value) {
    if (value === undefined || value === null) return '';
    return typeof value === 'string' ? value : JSON.stringify(value, null, 2);
  }

  // A <pre> holding text cut at TEXT_CUT chars / LINES_CUT lines, with a "show all" button.
  function cutPre(text, cls) {
    var wrap = el('div', null);
    var pre = el('pre', cls || null);
    var cut = text;
    var lines = 0;
    var i = -1;
    while (lines < LINES_CUT && (i = text.indexOf('\n', i + 1)) >= 0) lines += 1;
    if (lines >= LINES_CUT && i >= 0) cut = text.slice(0, i);
    if (cut.length > TEXT_CUT) cut = cut.slice(0, TEXT_CUT);
    pre.textContent = cut;
    wrap.appendChild(pre);
    if (cut.length < text.length) {
      var more = el('button', 'show-all', 'show all (' + (text.length - cut.length).toLocaleString() + ' more characters)');
      more.type = 'button';
      more.addEventListener('click', function () { pre.textContent = text; more.remove(); });
      wrap.appendChild(more);
    }
    return wrap;
  }

  function raw(kind, line) {
    var box = el('div', 'raw');
    box.appendChild(el('span', 'kind', kind));
    box.appendChild(cutPre(line, 'mono'));
    return box;
  }

  function fmtSeconds(ms) {
    var s = Math.round(ms / 1000);
    return s < 60 ? s + 's' : Math.floor(s / 60) + 'm ' + (s % 60) + 's';
  }

  // Costs: two decimals from a dollar up; below it at least four, and enough for two significant digits
  // (a real run's $0.0038 must not read as $0.00). The same rule as ccr.core.units.usd.
  function usd(cost) {
    if (!(cost > 0)) return '$0.00';
    if (cost >= 1) return '$' + cost.toFixed(2);
    var significant = -Math.floor(Math.log10(cost)) + 1;
    return '$' + cost.toFixed(Math.min(Math.max(significant, 4), 6));
  }

  function pct(utilization) {
    return Math.round(utilization * 100) + '%';
  }

  function fmtReset(value) {
    if (!value) return '';
    var d = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
    return isNaN(d) ? String(value) : d.toLocaleString();
  }

  // --- what an error type means, and what to do ------------------------------------------------------
  // One source for the advice: the server's table, embedded in the page as JSON data (not a script).
  var ADVICE = {};
  try { ADVICE = JSON.parse(document.getElementById('advice-data').textContent); } catch (e) { ADVICE = {}; }

  function advice(errorType, resetTime, authTarget) {
    var auth = errorType === 'auth_expired' && ADVICE.auth ? ADVICE.auth[authTarget] : null;
    var text = auth || (ADVICE.errors || {})[errorType];
    if (!text) return null;
    return text.replace('{reset}', resetTime ? ' (' + fmtReset(resetTime) + ')' : '');
  }

  // The server's Changes.summary(), for the result card.
  function changesText(c) {
    if (!c.commits && !c.filesChanged) return 'no commits';
    var n = function (k, word) { return k + ' ' + word + (k === 1 ? '' : 's'); };
    return n(c.commits || 0, 'commit') + ', ' + n(c.filesChanged || 0, 'file') +
      ' (+' + (c.additions || 0) + ' -' + (c.deletions || 0) + ')';
  }

  // --- tools ------------------------------------------------------------------------------------------
  function toolCard(block, parentId) {
    var input = block.input || {};
    var name = String(block.name || 'tool');
    var card = el('div', 'tool');
    card.setAttribute('data-tool', name);
    var head = el('div', 'tool-head');
    head.appendChild(el('span', 'tool-name', name));
    card.appendChild(head);
    var children = null;

    function arg(text) { if (text) head.appendChild(el('span', 'tool-arg', text)); }
    function path(p) {
      var s = str(p);
      return state.cwd && s.indexOf(state.cwd + '/') === 0 ? s.slice(state.cwd.length + 1) : s;
    }

    if (name === 'Bash') {
      if (input.description) head.appendChild(el('span', 'tool-desc', input.description));
      card.appendChild(cutPre(str(input.command), 'cmd'));
    } else if (name === 'Read') {
      arg(path(input.file_path));
      if (input.offset || input.limit) arg('lines ' + (input.offset || 1) + (input.limit ? '+' + input.limit : ''));
    } else if (name === 'Write') {
      arg(path(input.file_path));
      var w = el('details', 'result');
      w.appendChild(el('summary', null, 'content (' + str(input.content).length.toLocaleString() + ' characters)'));
      w.appendChild(cutPre(str(input.content)));
      card.appendChild(w);
    } else if (name === 'Edit' || name === 'MultiEdit') {
      arg(path(input.file_path));
      var edits = name === 'Edit' ? [input] : (Array.isArray(input.edits) ? input.edits : []);
      edits.forEach(function (edit) { card.appendChild(diff(str(edit.old_string), str(edit.new_string))); });
    } else if (name === 'Task' || name === 'Agent') {
      if (input.subagent_type) head.appendChild(el('span', 'subagent-tag', input.subagent_type));
      head.appendChild(el('span', 'tool-desc', input.description || ''));
      if (input.prompt) {
        var p = el('details', 'result');
        p.appendChild(el('summary', null, 'prompt'));
        p.appendChild(cutPre(str(input.prompt)));
        card.appendChild(p);
      }
      children = el('div', 'children');
      card.appendChild(children);
    } else if (name === 'Grep' || name === 'Glob') {
      arg(input.pattern);
      arg(input.path);
    } else if (name === 'WebFetch' || name === 'WebSearch') {
      arg(input.url || input.query);
    } else if (name === 'TodoWrite' && Array.isArray(input.todos)) {
      var list = el('ul', 'todos');
      input.todos.forEach(function (t) {
        var mark = t.status === 'completed' ? '☑ ' : (t.status === 'in_progress' ? '▶ ' : '☐ ');
        list.appendChild(el('li', null, mark + str(t.content)));
      });
      card.appendChild(list);
    } else {
      var keys = Object.keys(input);
      if (keys.length) card.appendChild(cutPre(JSON.stringify(input, null, 2), 'mono'));
    }
    if (block.id) state.tools.set(String(block.id), { card: card, children: children, parent: parentId });
    return card;
  }

  function diff(before, after) {
    var box = el('pre', 'diff');
    var lines = 0;
    function add(text, cls, mark) {
      text.split('\n').forEach(function (line) {
        if (lines++ > 400) return;
        box.appendChild(el('span', cls, mark + line));
      });
    }
    if (before) add(before, 'del', '- ');
    if (after) add(after, 'add', '+ ');
    if (lines > 400) box.appendChild(el('span', 'muted', '… ' + (lines - 400) + ' more lines (download the raw JSONL)'));
    return box;
  }

  function resultText(content) {
    if (typeof content === 'string') return content;
    if (Array.isArray(content)) {
      return content.map(function (b) {
        if (b && b.type === 'text') return str(b.text);
        if (b && b.type === 'image') return '[image]';
        return JSON.stringify(b);
      }).join('\n');
    }
    return str(content);
  }

  function toolResult(block) {
    var text = resultText(block.content);
    var box = el('details', 'result' + (block.is_error ? ' is-error' : ''));
    var firstLine = text.split('\n', 1)[0];
    var label = (block.is_error ? 'error: ' : 'result: ') + (firstLine.length > 80 ? firstLine.slice(0, 80) + '…' : firstLine);
    var count = text ? text.split('\n').length : 0;
    box.appendChild(el('summary', null, label + (count > 1 ? '  (' + count + ' lines)' : '')));
    // Filled on first open: 50,000 collapsed results cost nothing.
    box.addEventListener('toggle', function fill() {
      if (box.open && box.childNodes.length === 1) box.appendChild(cutPre(text));
    });
    return box;
  }

  // --- one line ---------------------------------------------------------------------------------------
  // Returns the placements: [[node, container]]; container null = the top level.
  function containerFor(ev) {
    var parent = ev && ev.parent_tool_use_id;
    if (!parent && ev && ev.type === 'system' && /^task_/.test(str(ev.subtype))) {
      // a subagent's lifecycle: task_started names the Agent call, later events only the task
      if (ev.tool_use_id && ev.task_id) state.taskTools.set(String(ev.task_id), String(ev.tool_use_id));
      parent = ev.tool_use_id || state.taskTools.get(String(ev.task_id));
    }
    if (!parent) return null;
    var t = state.tools.get(String(parent));
    return t && t.children ? t.children : null;
  }

  // The system events the CLI prints in print mode (recorded from 2.1.332), each as one compact line:
  // [text, extra class]. Other subtypes stay raw blocks, as every unknown event does.
  var WINDOWS = [
    ['five_hour', '5-hour'], ['seven_day', '7-day'], ['seven_day_opus', '7-day Opus'],
    ['seven_day_sonnet', '7-day Sonnet'], ['seven_day_overage_included', '7-day incl. overage'], ['overage', 'overage'],
  ];
  function windowName(type) {
    for (var i = 0; i < WINDOWS.length; i++) if (WINDOWS[i][0] === type) return WINDOWS[i][1];
    return type ? String(type) : 'limit';
  }
  function seconds(ms) { return typeof ms === 'number' ? ' in ' + (ms / 1000).toFixed(1) + ' s' : ''; }
  var SYSTEM = {
    api_retry: function (ev) {
      var why = [ev.error_status, ev.error].filter(function (x) { return x !== null && x !== undefined && x !== ''; });
      return ['↻ retrying (' + str(ev.attempt) + '/' + str(ev.max_retries) + (why.length ? ', ' + why.join(' ') : '') + ')' +
        seconds(ev.retry_delay_ms), 'retry'];
    },
    vcs_state_changed: function (ev) {
      return ['git ' + str(ev.kind || 'change') + (ev.branch ? ' · ' + str(ev.branch) : ''), 'vcs'];
    },
    thinking_tokens: function (ev) {
      return ['thinking… ~' + str(ev.estimated_tokens) + ' tokens', 'quiet'];
    },
    task_started: function (ev) {
      return ['subagent started: ' + str(ev.description) + (ev.subagent_type ? ' (' + str(ev.subagent_type) + ')' : '') +
        (ev.is_backgrounded ? ' · in the background' : ''), 'task'];
    },
    task_progress: function (ev) {
      return ['subagent: ' + str(ev.description || ev.last_tool_name), 'quiet'];
    },
    task_updated: function (ev) {
      var patch = ev.patch || {};
      return ['subagent ' + str(patch.status || 'updated'), 'quiet'];
    },
    task_notification: function (ev) {
      return ['subagent ' + str(ev.status || 'finished') + (ev.summary ? ': ' + str(ev.summary) : ''), 'task'];
    },
    status: function (ev) {
      if (ev.status) return [str(ev.status) + '…', 'quiet'];
      return [ev.compact_result ? 'compaction: ' + str(ev.compact_result) : 'status cleared', 'quiet'];
    },
    background_tasks_changed: function (ev) {
      var n = Array.isArray(ev.tasks) ? ev.tasks.length : 0;
      return [n ? n + ' background task' + (n > 1 ? 's' : '') + ' running' : 'no background tasks', 'quiet'];
    },
  };

  // The plan's usage windows (5-hour, 7-day) from a rate_limit_event: unifiedWindows when the CLI sends
  // them, else the one window the event is about. Shown in the line and, latest first, beside the title.
  function usageWindows(info) {
    var out = [];
    var windows = info.unifiedWindows && typeof info.unifiedWindows === 'object' ? info.unifiedWindows : {};
    WINDOWS.forEach(function (w) {
      var x = windows[w[0]];
      if (x && typeof x.utilization === 'number') out.push([w[1], x.utilization, x.resetsAt]);
    });
    if (!out.length && typeof info.utilization === 'number') {
      out.push([windowName(info.rateLimitType), info.utilization, info.resetsAt]);
    }
    return out;
  }

  var planUsageEl = document.getElementById('plan-usage');
  function showPlanUsage(windows) {
    if (!planUsageEl || !windows.length) return;
    planUsageEl.textContent = 'plan usage: ' + windows.map(function (w) { return w[0] + ' ' + pct(w[1]); }).join(' · ');
    planUsageEl.title = windows.map(function (w) { return w[0] + ' resets ' + fmtReset(w[2]); }).join('\n');
    planUsageEl.hidden = false;
  }

  function renderClaude(ev, line) {
    var type = ev.type;
    var node = el('div', 'entry entry-' + String(type).replace(/[^a-z_]/gi, ''));
    if (type === 'system' && ev.subtype === 'init') {
      node.classList.add('init');
      if (typeof ev.cwd === 'string') state.cwd = ev.cwd.replace(/\/+$/, '');
      var summary = 'Claude ' + (ev.claude_code_version || '') + ' · model ' + (ev.model || '?') +
        ' · ' + (Array.isArray(ev.tools) ? ev.tools.length : 0) + ' tools';
      node.appendChild(el('div', null, summary));
      if (Array.isArray(ev.mcp_servers) && ev.mcp_servers.length) {
        var mcp = el('div', null, 'MCP: ');
        ev.mcp_servers.forEach(function (s) {
          var ok = s.status === 'connected';
          mcp.appendChild(el('span', 'mcp ' + (ok ? 'mcp-ok' : 'mcp-bad'), str(s.name) + ' (' + str(s.status) + ')'));
        });
        node.appendChild(mcp);
      }
      if (Array.isArray(ev.tools) && ev.tools.length) {
        var d = el('details', null);
        d.appendChild(el('summary', null, 'tools'));
        d.appendChild(el('div', 'mono', ev.tools.join(', ')));
        node.appendChild(d);
      }
      return node;
    }
    if (type === 'system' && SYSTEM[ev.subtype]) {
      node.classList.add('sys', 'sys-' + String(ev.subtype).replace(/[^a-z_]/gi, ''));
      var line = SYSTEM[ev.subtype](ev);
      node.appendChild(el('div', 'sys-line' + (line[1] ? ' ' + line[1] : ''), line[0]));
      return node;
    }
    if (type === 'system' && ev.subtype === 'compact_boundary') {
      var meta = ev.compact_metadata || {};
      node.appendChild(el('div', 'compact', '— context compacted (' + str(meta.trigger || '') +
        (meta.pre_tokens ? ', ' + meta.pre_tokens.toLocaleString() + ' tokens before' : '') + ') —'));
      return node;
    }
    if (type === 'assistant' && ev.message && Array.isArray(ev.message.content)) {
      if (ev.error) node.appendChild(el('div', 'assistant-error', 'API error: ' + str(ev.error)));
      ev.message.content.forEach(function (block) {
        if (!block) return;
        if (block.type === 'text') {
          node.appendChild(el('div', 'text', block.text));
        } else if (block.type === 'thinking' || block.type === 'redacted_thinking') {
          var t = el('details', 'thinking');
          t.appendChild(el('summary', null, 'Thinking'));
          t.appendChild(el('div', 'body', block.thinking || '(redacted)'));
          node.appendChild(t);
        } else if (block.type === 'tool_use' || block.type === 'server_tool_use') {
          node.appendChild(toolCard(block, ev.parent_tool_use_id));
        } else {
          node.appendChild(raw('assistant ' + str(block.type), JSON.stringify(block)));
        }
      });
      return node;
    }
    if (type === 'user' && ev.message) {
      var content = ev.message.content;
      if (typeof content === 'string') { node.appendChild(el('div', 'text', content)); return node; }
      if (!Array.isArray(content)) return null;
      var placements = [];
      content.forEach(function (block) {
        if (block && block.type === 'tool_result') {
          var target = state.tools.get(String(block.tool_use_id));
          var r = toolResult(block);
          if (target) { placements.push([r, target.card]); return; }
          node.appendChild(r);
        } else if (block && block.type === 'text') {
          node.appendChild(el('div', 'text', block.text));
        } else {
          node.appendChild(raw('user ' + str(block && block.type), JSON.stringify(block)));
        }
      });
      if (node.childNodes.length) placements.unshift([node, containerFor(ev)]);
      return placements;
    }
    if (type === 'rate_limit_event') {
      var info = ev.rate_limit_info || {};
      var status = str(info.status);
      var warn = status !== 'allowed';
      var windows = usageWindows(info);
      var used = windows.map(function (w) { return w[0] + ' ' + pct(w[1]) + ' used'; }).join(' · ');
      var rate = el('div', 'rate' + (warn ? ' warn' : ''),
        (status === 'rejected' ? '⚠ Usage limit reached' : (warn ? '⚠ Usage warning' : 'Usage')) +
        (info.rateLimitType ? ' (' + windowName(info.rateLimitType) + ')' : '') + (used ? ': ' + used : '') +
        (info.resetsAt ? ' · resets ' + fmtReset(info.resetsAt) : ''));
      rate.setAttribute('data-status', status);
      node.appendChild(rate);
      showPlanUsage(windows);
      return node;
    }
    if (type === 'result') {
      var bad = ev.is_error === true || (ev.subtype && ev.subtype !== 'success');
      var card = el('div', 'result-card ' + (bad ? 'bad' : 'ok'));
      card.appendChild(el('strong', null, 'Claude finished: ' + (bad ? 'error' : 'success') +
        (ev.subtype && ev.subtype !== 'success' ? ' (' + ev.subtype + ')' : '') +
        (ev.api_error_status ? ' · HTTP ' + ev.api_error_status : '')));
      var stats = el('div', 'stats');
      if (typeof ev.total_cost_usd === 'number') stats.appendChild(el('span', null, 'cost ' + usd(ev.total_cost_usd)));
      if (ev.num_turns !== undefined) stats.appendChild(el('span', null, ev.num_turns + ' turns'));
      if (ev.duration_ms !== undefined) stats.appendChild(el('span', null, fmtSeconds(ev.duration_ms)));
      card.appendChild(stats);
      if (ev.result) card.appendChild(cutPre(str(ev.result)));
      if (Array.isArray(ev.errors)) ev.errors.forEach(function (e) { card.appendChild(el('div', null, str(e))); });
      node.appendChild(card);
      return node;
    }
    node.appendChild(raw(str(type) + (ev.subtype ? ' ' + ev.subtype : ''), line));
    return node;
  }

  var PHASE_NAMES = { preflight: 'Preflight', orchestrator: 'Orchestrator', worker: 'Worker', finish: 'Finish' };

  function renderCcr(ev, line) {
    var node = el('div', 'entry entry-ccr');
    var kind = ev.event;
    if (kind === 'phase') {
      node.appendChild(el('div', 'phase', PHASE_NAMES[ev.phase] || str(ev.phase)));
    } else if (kind === 'step') {
      var bad = /could not|fail|error/i.test(str(ev.message));
      var step = el('div', 'step' + (bad ? ' step-bad' : ''), str(ev.message || ev.step));
      step.setAttribute('data-step', str(ev.step));
      if (ev.url) step.appendChild(link(ev.url, ev.step === 'pr_opened' ? 'open the draft PR' : ev.url));
      node.appendChild(step);
    } else if (kind === 'status') {
      node.appendChild(el('div', 'status-line', 'status: ' + str(ev.phase) + (ev.message ? ' — ' + ev.message : '')));
    } else if (kind === 'result') {
      var ok = ev.status === 'Succeeded';
      var card = el('div', 'result-card ' + (ok ? 'ok' : 'bad'));
      card.setAttribute('data-result', str(ev.status));
      card.appendChild(el('strong', null, 'Task ' + str(ev.status).toLowerCase() + (ev.errorType ? ' · ' + ev.errorType : '')));
      var stats = el('div', 'stats');
      var u = ev.usage || {};
      if (typeof u.costUsd === 'number') stats.appendChild(el('span', null, 'cost ' + usd(u.costUsd)));
      if (u.turns !== undefined) stats.appendChild(el('span', null, u.turns + ' turns'));
      if (u.durationMs !== undefined) stats.appendChild(el('span', null, fmtSeconds(u.durationMs)));
      if (ev.changes) stats.appendChild(el('span', 'changes', changesText(ev.changes)));
      if (ev.prUrl) stats.appendChild(link(ev.prUrl, 'pull request'));
      card.appendChild(stats);
      if (ev.message) card.appendChild(el('div', null, ev.message));
      var what = advice(ev.errorType, ev.resetTime, ev.authTarget);
      if (what) card.appendChild(el('p', 'advice', what));
      node.appendChild(card);
    } else if (kind === 'raw') {
      node.appendChild(raw('output', str(ev.text)));
    } else {
      node.appendChild(raw('ccr ' + str(kind), line));
    }
    return node;
  }

  // Top-level entries go into chunks of CHUNK_LINES: the browser lays out only the chunks on screen,
  // so a 50,000-line transcript costs about what its visible part does.
  function topLevel() {
    if (!state.chunk || state.chunkSize >= CHUNK_LINES) {
      attachChunk();
      state.chunk = el('div', 'chunk');
      state.chunkSize = 0;
    }
    state.chunkSize += 1;
    return state.chunk;
  }

  // A chunk is built off the document and attached when full, when the backlog is drawn, or at once
  // when it is the first or the reader follows the end: a backlog then costs one style pass per chunk.
  function attachChunk() {
    if (state.chunk && !state.chunk.isConnected) root.appendChild(state.chunk);
  }

  function renderLine(seq, line) {
    var ev = null;
    try { ev = JSON.parse(line); } catch (e) { ev = null; }
    var placements;
    if (!ev || typeof ev !== 'object' || Array.isArray(ev)) {
      placements = [[raw('text', line), null]];
    } else {
      var out;
      try {
        out = ev.type === 'ccr' ? renderCcr(ev, line) : renderClaude(ev, line);
      } catch (err) {
        out = raw(str(ev.type) + ' (could not draw: ' + err.message + ')', line);
      }
      if (out === null) out = raw(str(ev.type), line);
      placements = Array.isArray(out) ? out : [[out, containerFor(ev)]];
      if (!placements.length) placements = [[raw(str(ev.type), line), null]];
    }
    placements.forEach(function (p, i) {
      var node = p[0];
      if (!node.classList.contains('entry')) node.classList.add('entry');
      node.setAttribute(i === 0 ? 'data-seq' : 'data-seq-part', String(seq));
      (p[1] || topLevel()).appendChild(node);
    });
    state.drawn += 1;
  }

  // --- drawing in frames ---------------------------------------------------------------------------------
  function schedule() {
    if (state.scheduled) return;
    state.scheduled = true;
    requestAnimationFrame(drawFrame);
  }

  function drawFrame(now) {
    state.scheduled = false;
    if (state.lastFrame) {
      var interval = now - state.lastFrame;  // includes the style and layout of the last batch
      if (interval > 40) state.budget = Math.max(BUDGET_MIN_MS, state.budget / 2);
      else if (interval < 24) state.budget = Math.min(BUDGET_MAX_MS, state.budget + 1);
    }
    var start = performance.now();
    var q = state.queue;
    // The reader comes first: right after a click, key or wheel, draw nothing for a moment.
    var budget = start < state.inputAt + INPUT_PAUSE_MS ? 0 : state.budget;
    while (state.head < q.length && budget > 0) {
      var item = q[state.head];
      q[state.head] = null;
      state.head += 1;
      renderLine(item[0], item[1]);
      if (performance.now() - start > budget || inputPending()) break;
    }
    if (state.head >= q.length || state.follow || !root.firstChild) attachChunk();
    if (state.head >= q.length) {
      state.queue = [];
      state.head = 0;
      state.lastFrame = 0;
    } else {
      state.lastFrame = now;
      schedule();
    }
    // No layout reads while a backlog is drawn (they would force style and layout of every batch);
    // once it is all drawn, one read decides whether "latest" is needed.
    if (state.follow) scrollToEnd();
    if (state.head === 0) showJump();
    else if (jumpEl && !state.follow) jumpEl.hidden = false;
  }

  function inputPending() {
    return !!(navigator.scheduling && navigator.scheduling.isInputPending && navigator.scheduling.isInputPending());
  }

  ['pointerdown', 'keydown', 'wheel', 'touchstart'].forEach(function (type) {
    window.addEventListener(type, function () { state.inputAt = performance.now(); }, { passive: true, capture: true });
  });

  // --- following the end -----------------------------------------------------------------------------------
  function atBottom() {
    var doc = document.scrollingElement || document.documentElement;
    return doc.scrollHeight - (doc.scrollTop + window.innerHeight) <= BOTTOM_SLACK_PX;
  }

  function scrollToEnd() {
    var doc = document.scrollingElement || document.documentElement;
    window.scrollTo(0, doc.scrollHeight);
  }

  function showJump() {
    if (jumpEl) jumpEl.hidden = state.follow || atBottom();
  }

  // Following stops when the reader scrolls up, and starts again when they reach the bottom. Growth of
  // the page (new lines, sizes settling) never moves scrollTop up, so it never stops following.
  window.addEventListener('scroll', function () {
    var top = (document.scrollingElement || document.documentElement).scrollTop;
    if (atBottom()) state.follow = true;
    else if (top < state.lastScrollTop - 2) state.follow = false;
    state.lastScrollTop = top;
    showJump();
  }, { passive: true });

  if (jumpEl) jumpEl.addEventListener('click', function () { state.follow = true; scrollToEnd(); showJump(); });

  // --- the stream (a worker: static/transcript-stream.js) ----------------------------------------------------
  function setState(text) { if (stateEl) stateEl.textContent = text; }

  function onLines(lines) {
    if (state.firstLinesAt === null) state.firstLinesAt = performance.now();
    for (var i = 0; i < lines.length; i++) {
      var seq = lines[i][0];
      if (!(seq > state.lastSeq)) continue;   // seen before a reconnect: drop it
      state.lastSeq = seq;
      state.queue.push(lines[i]);
    }
    schedule();
  }

  function onMessage(msg) {
    if (msg.type === 'lines') onLines(msg.lines);
    else if (msg.type === 'state') setState(msg.state === 'live' ? 'live' : 'reconnecting…');
    else if (msg.type === 'end') {
      state.ended = true;
      setState('ended · ' + state.lastSeq.toLocaleString() + ' lines');
    }
  }

  var send;
  try {
    var worker = new Worker('/static/transcript-stream.js');
    worker.onmessage = function (e) { onMessage(e.data); };
    send = function (msg) { worker.postMessage(msg); };
  } catch (err) {
    send = window.ccrCreateStream(onMessage);  // no workers: the same code on the page
  }

  function connect() {
    state.ended = false;
    send({ type: 'open', url: '/task/' + encodeURIComponent(taskId) + '/events', after: state.lastSeq });
  }

  window.ccrTranscript = {
    state: state,
    // Drop the stream and open a new one after the last seq seen (used by the tests).
    reconnect: function () { send({ type: 'close' }); connect(); },
    close: function () { send({ type: 'close' }); },
  };

  connect();
})();
