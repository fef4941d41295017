// os4x-web: the little script behind the pages. Everything it changes goes
// through the JSON API with the session's CSRF token; the daemon table is
// rendered from GET /api/daemons and refreshed every 3 s. Data is put into
// the page with textContent only, never as HTML.
(function () {
  'use strict';

  const REFRESH_MS = 3000;
  const csrf = () => {
    const m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : '';
  };

  function flash(msg, kind) {
    const f = document.getElementById('flash');
    if (!f) return;
    f.textContent = msg;
    f.className = kind || 'info';
    if (kind !== 'error') {
      setTimeout(() => {
        if (f.textContent === msg) { f.textContent = ''; f.className = ''; }
      }, 8000);
    }
  }

  async function api(method, url, body, multipart) {
    const opts = { method, headers: { 'X-CSRF-Token': csrf() }, credentials: 'same-origin' };
    if (multipart) {
      opts.body = body;
    } else if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(url, opts);
    let data = null;
    try { data = await r.json(); } catch (e) { /* not JSON */ }
    if (r.status === 401) { location.href = '/login'; }
    if (!r.ok) throw new Error((data && data.message) || (r.status + ' ' + r.statusText));
    return data;
  }

  function formBody(form) {
    const o = {};
    for (const el of form.elements) {
      if (!el.name) continue;
      if (el.type === 'checkbox') o[el.name] = el.checked;
      else if (el.type === 'number') { if (el.value !== '') o[el.name] = Number(el.value); }
      else if (el.value !== '') o[el.name] = el.value;
    }
    return o;
  }

  function reloadWith(msg) {
    sessionStorage.setItem('os4x-flash', msg);
    location.reload();
  }

  document.addEventListener('submit', async (ev) => {
    const form = ev.target;
    if (!form.dataset || !form.dataset.api) return;
    ev.preventDefault();
    const multipart = form.hasAttribute('data-multipart');
    if (multipart) {
      const f = form.querySelector('input[type=file]');
      if (f && f.files[0] && f.dataset.max && f.files[0].size > Number(f.dataset.max)) {
        flash('The file is larger than the upload limit.', 'error');
        return;
      }
    }
    const buttons = form.querySelectorAll('button');
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await api(form.dataset.apiMethod || 'POST', form.dataset.api,
        multipart ? new FormData(form) : formBody(form), multipart);
      reloadWith('Saved.');
    } catch (e) {
      flash(e.message, 'error');
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  });

  document.addEventListener('click', async (ev) => {
    const b = ev.target.closest('button[data-api]');
    if (!b) return;
    if (b.dataset.confirm && !window.confirm(b.dataset.confirm)) return;
    b.disabled = true;
    try {
      await api(b.dataset.apiMethod || 'POST', b.dataset.api,
        b.dataset.body ? JSON.parse(b.dataset.body) : undefined);
      reloadWith('Done.');
    } catch (e) {
      flash(e.message, 'error');
      b.disabled = false;
    }
  });

  // ------------------------------------------------------------------
  // Daemons

  function duration(s) {
    if (s === null || s === undefined) return '–';
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24,
      m = Math.floor(s / 60) % 60, sec = s % 60;
    const two = (n) => String(n).padStart(2, '0');
    if (d > 0) return d + 'd' + two(h) + 'h';
    if (h > 0) return h + 'h' + two(m) + 'm';
    if (m > 0) return m + 'm' + two(sec) + 's';
    return sec + 's';
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  const LABELS = { start: 'Start', stop: 'Stop', restart: 'Restart', 'start-forced': 'Start forced' };
  let busy = false;

  function row(p) {
    const tr = el('tr');
    tr.dataset.program = p.program;
    tr.dataset.state = p.state;
    tr.appendChild(el('td', 'program', p.program));
    tr.appendChild(el('td', 'sid', p.server_id));
    tr.appendChild(el('td', 'pid num', p.pid === null ? '–' : p.pid));
    const st = el('td', 'state');
    const short = p.state.startsWith('stale') ? 'stale' : p.state;
    st.appendChild(el('span', 'badge ' + ({ running: 'ok', stopped: 'off', stale: 'bad' })[short], short));
    if (short === 'stale') st.appendChild(el('span', 'reason', p.state_text.replace(/^stale: /, '')));
    if (p.required && short !== 'running') st.appendChild(el('span', 'reason', 'required'));
    tr.appendChild(st);
    const pf = el('td', 'pidfile');
    pf.appendChild(el('span', 'badge ' + (p.pid_file.state === 'present' ? 'ok' : p.pid_file.state === 'absent' ? 'off' : 'warn'), p.pid_file.state));
    tr.appendChild(pf);
    tr.appendChild(el('td', 'listening small', p.listening ? (p.listening.join(', ') || 'none') : (p.listening_error ? '?' : '–')));
    tr.appendChild(el('td', 'uptime num', duration(p.uptime_seconds)));
    const unit = el('td', 'unit small');
    if (p.systemd) {
      unit.appendChild(el('code', null, p.systemd.unit));
      unit.appendChild(el('span', 'reason', (p.systemd.active_state || '?') + (p.systemd.sub_state ? ' (' + p.systemd.sub_state + ')' : '')));
      if (p.systemd.disagreement) unit.appendChild(el('span', 'reason bad-text', p.systemd.disagreement));
    } else {
      unit.textContent = p.control === 'direct' ? 'not under systemd' : '–';
    }
    tr.appendChild(unit);
    const act = el('td', 'actions');
    for (const a of p.actions || []) {
      const b = el('button', 'small' + (a === 'start-forced' ? ' danger-outline' : ''), LABELS[a] || a);
      b.type = 'button';
      b.dataset.action = a;
      b.dataset.program = p.program;
      b.disabled = busy;
      act.appendChild(b);
    }
    tr.appendChild(act);
    return tr;
  }

  async function refresh() {
    const table = document.getElementById('daemons');
    if (!table) return;
    try {
      const doc = await api('GET', '/api/daemons');
      const tbody = table.tBodies[0];
      const rows = doc.programs.map(row);
      tbody.replaceChildren(...rows);
      const r = document.getElementById('refreshed');
      if (r) r.textContent = 'refreshed ' + new Date().toLocaleTimeString();
    } catch (e) {
      flash('Cannot load the daemon table: ' + e.message, 'error');
    }
  }

  function nodeRow(n, programs) {
    const tr = el('tr');
    tr.dataset.serverId = n.server_id;
    tr.appendChild(el('td', 'sid', n.server_id));
    tr.appendChild(el('td', 'host', n.host));
    tr.appendChild(el('td', 'num', duration(n.heartbeat_age_seconds) + ' ago'));
    tr.appendChild(el('td', 'small', n.version || '–'));
    const st = el('td', 'state');
    st.appendChild(el('span', 'badge ' + (n.alive ? 'ok' : 'bad'), n.alive ? 'alive' : 'silent'));
    tr.appendChild(st);
    const ps = el('td', 'small');
    for (const p of programs.filter((p) => p.server_id === n.server_id && p.host === n.host)) {
      ps.appendChild(el('span', 'reason', p.program + (p.pid === null ? '' : ' (' + p.pid + ')') + ': ' + p.state_text));
    }
    tr.appendChild(ps);
    return tr;
  }

  async function refreshNodes() {
    const table = document.getElementById('nodes');
    if (!table) return;
    try {
      const doc = await api('GET', '/api/nodes');
      table.tBodies[0].replaceChildren(...doc.nodes.map((n) => nodeRow(n, doc.programs)));
    } catch (e) {
      flash('Cannot load the node table: ' + e.message, 'error');
    }
  }

  async function perform(program, action) {
    busy = true;
    document.querySelectorAll('#daemons button').forEach((b) => { b.disabled = true; });
    flash(LABELS[action] + ' ' + program + '…', 'info');
    try {
      const r = await api('POST', '/api/daemons/' + encodeURIComponent(program) + '/' + action);
      flash(r.message, 'ok');
    } catch (e) {
      flash(e.message, 'error');
    } finally {
      busy = false;
      refresh();
    }
  }

  function initDaemons() {
    const table = document.getElementById('daemons');
    if (!table) return;
    const dialog = document.getElementById('confirm-forced');
    let pending = null;
    table.addEventListener('click', (ev) => {
      const b = ev.target.closest('button[data-action]');
      if (!b || busy) return;
      if (b.dataset.action === 'start-forced') {
        pending = b.dataset.program;
        document.getElementById('forced-program').textContent = pending;
        dialog.returnValue = '';
        dialog.showModal();
      } else {
        perform(b.dataset.program, b.dataset.action);
      }
    });
    dialog.addEventListener('close', () => {
      if (dialog.returnValue === 'yes' && pending) perform(pending, 'start-forced');
      pending = null;
    });
    refresh();
    refreshNodes();
    setInterval(() => { if (!busy) { refresh(); refreshNodes(); } }, REFRESH_MS);
  }

  document.addEventListener('DOMContentLoaded', () => {
    const msg = sessionStorage.getItem('os4x-flash');
    if (msg) { sessionStorage.removeItem('os4x-flash'); flash(msg, 'ok'); }
    initDaemons();
  });
})();
