// iotdr dashboard: renders the snapshots of GET /v1/live and sends the routing controls.
// Plain browser JavaScript, no build step; every value from the server goes into the page through
// textContent, never as HTML.
(() => {
  const TOKEN_KEY = 'iotdr.adminToken';
  // The token the live view is read with (reader role or above); kept only if the operator asks.
  const VIEW_TOKEN_KEY = 'iotdr.viewToken';
  const FACTORS = [
    'firstFailedProbeAt',
    'thresholdCrossedAt',
    'decidedAt',
    'dnsUpdatedAt',
    'noticesPublishedAt',
    'disconnectsRequestedAt',
  ];
  const COLOURS = ['#58a6ff', '#f0883e', '#a371f7', '#3fb950', '#db61a2', '#e3b341'];

  const $ = (id) => document.getElementById(id);
  let latest = null;
  let chart = null;
  let chartRegions = '';
  let buttonsKey = '';
  let pending = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs ?? {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'className') node.className = value;
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children) {
      if (child === undefined || child === null) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function ms(value) {
    return value === null || value === undefined ? '—' : `${Math.round(value)} ms`;
  }

  function clock(at) {
    return new Date(at).toLocaleTimeString([], { hour12: false });
  }

  // ---- header -------------------------------------------------------------------------------

  function renderHeader(s) {
    $('zone').textContent = s.zone;
    const active = $('active-region');
    const region = s.active ? s.active.region : '—';
    if (active.textContent !== region) {
      active.textContent = region;
      // When the page showed this region: the browser test compares it with the decision time.
      active.dataset.shownAt = String(Date.now());
    }
    $('epoch').textContent = s.active ? String(s.active.epoch) : '—';
    const mode = $('mode');
    const parts = [];
    if (s.active)
      parts.push(s.active.mode === 'override' ? 'pinned by routing control' : `mode ${s.active.mode}`);
    if (s.active?.noHealthyRegion) parts.push('NO HEALTHY REGION');
    if (s.active?.failbackAvailable) parts.push(`failback to ${s.active.failbackAvailable} available`);
    if (!s.control.reachable)
      parts.push(`control unreachable${s.control.error ? `: ${s.control.error}` : ''}`);
    mode.textContent = parts.join(' · ');
    mode.classList.toggle('alert', Boolean(s.active?.noHealthyRegion) || !s.control.reachable);
    renderButtons(s);
  }

  function renderButtons(s) {
    const activeName = s.active ? s.active.region : null;
    const targets = s.regions.filter((r) => r.name !== activeName).map((r) => r.name);
    const primary = s.regions.find((r) => r.role === 'primary');
    const canFailBack =
      s.active !== null &&
      (s.active.mode === 'override' || s.active.failbackAvailable !== null || activeName !== primary?.name);
    const key = JSON.stringify([activeName, targets, canFailBack]);
    if (key === buttonsKey) return;
    buttonsKey = key;
    const box = $('routing');
    box.replaceChildren();
    for (const to of targets) {
      const button = el('button', { type: 'button', 'data-testid': `failover-${to}` }, `Fail over to ${to}`);
      button.addEventListener('click', () => openDialog({ kind: 'failover', from: activeName, to }));
      box.append(button);
    }
    const back = el(
      'button',
      {
        type: 'button',
        'data-testid': 'failback',
        disabled: !canFailBack,
        title: canFailBack ? null : 'the fleet is on the preferred region already',
      },
      'Fail back',
    );
    back.addEventListener('click', () =>
      openDialog({
        kind: 'failback',
        from: activeName,
        to: s.active?.failbackAvailable ?? primary?.name ?? '?',
      }),
    );
    box.append(back);
  }

  // ---- region cards --------------------------------------------------------------------------

  function ingestText(ingest) {
    if (!ingest) return 'not ingested';
    const st = ingest.state;
    switch (st.type) {
      case 'lagging':
        return `lagging ${ms(st.lagMs)} (${ingest.lagEvents ?? '?'} events)`;
      case 'unreachable':
        return `unreachable: ${st.error}`;
      case 'stopped':
        return `stopped: ${st.reason}`;
      default:
        return `${st.type}${ingest.lagEvents ? ` (${ingest.lagEvents} behind)` : ''}`;
    }
  }

  function regionCard(r, s) {
    const isActive = s.active?.region === r.name;
    const chips = el('div', { className: 'chips' });
    const components = Object.entries(r.health.components);
    if (components.length === 0)
      chips.append(el('span', { className: `chip ${r.health.status}` }, r.health.status));
    for (const [component, status] of components)
      chips.append(el('span', { className: `chip ${status}`, title: `${component}: ${status}` }, component));
    const links = el('div', { className: 'links' });
    if (r.replication.length === 0) links.append(el('span', { className: 'role' }, 'no links'));
    for (const link of r.replication)
      links.append(
        el(
          'div',
          { 'data-testid': `replication-${r.name}-${link.peer}` },
          `from ${link.peer}: ${link.state}, ${link.lagChanges ?? '?'} changes / ${ms(link.lagMs)} behind`,
        ),
      );
    const errors = Object.entries(r.errors);
    return el(
      'article',
      {
        className: `card${isActive ? ' is-active' : ''}`,
        'data-testid': `region-${r.name}`,
        'aria-label': `Region ${r.name}${isActive ? ' (active)' : ''}`,
      },
      el(
        'header',
        null,
        el('h3', null, r.name),
        el('span', { className: 'role' }, `${r.role} · priority ${r.priority}`),
        isActive ? el('span', { className: 'badge' }, 'ACTIVE') : null,
      ),
      el(
        'div',
        { className: 'row' },
        el('span', { className: 'k' }, 'health'),
        el(
          'span',
          { className: `chip ${r.health.status}`, 'data-testid': `health-${r.name}` },
          r.health.status,
        ),
        el('span', { className: 'role' }, `controller: ${r.controllerStatus ?? '?'}`),
      ),
      el('div', { className: 'row' }, el('span', { className: 'k' }, 'components'), chips),
      el(
        'div',
        { className: 'row' },
        el('span', { className: 'k' }, 'devices connected'),
        el('span', { className: 'count', 'data-testid': `connected-${r.name}` }, r.connected ?? '?'),
      ),
      el('div', { className: 'row' }, el('span', { className: 'k' }, 'replication'), links),
      el(
        'div',
        { className: 'row' },
        el('span', { className: 'k' }, 'ingestion'),
        el('span', { 'data-testid': `ingest-${r.name}` }, ingestText(r.ingest)),
      ),
      errors.length > 0
        ? el(
            'ul',
            { className: 'errors' },
            ...errors.map(([source, why]) => el('li', null, `${source}: ${why}`)),
          )
        : null,
    );
  }

  function renderRegions(s) {
    $('regions').replaceChildren(...s.regions.map((r) => regionCard(r, s)));
  }

  // ---- chart ---------------------------------------------------------------------------------

  function chartData(s) {
    const names = s.regions.map((r) => r.name);
    const first = s.rates[names[0]] ?? [];
    const xs = first.map(([second]) => second / 1000);
    return { names, data: [xs, ...names.map((n) => (s.rates[n] ?? []).map(([, m]) => m))] };
  }

  function chartSize(box) {
    return { width: Math.max(200, box.clientWidth), height: Math.max(120, box.clientHeight - 40) };
  }

  function renderChart(s) {
    const box = $('rate-chart');
    const { names, data } = chartData(s);
    if (typeof uPlot === 'undefined') return;
    if (!chart || chartRegions !== names.join()) {
      chart?.destroy();
      chartRegions = names.join();
      chart = new uPlot(
        {
          ...chartSize(box),
          legend: { live: false },
          scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(5, max * 1.15)] } },
          axes: [
            { stroke: '#9aa8b6', grid: { stroke: '#2a3a4a' }, ticks: { stroke: '#2a3a4a' } },
            { stroke: '#9aa8b6', grid: { stroke: '#2a3a4a' }, ticks: { stroke: '#2a3a4a' }, label: 'msg/s' },
          ],
          series: [
            {},
            ...names.map((name, i) => ({ label: name, stroke: COLOURS[i % COLOURS.length], width: 2 })),
          ],
        },
        data,
        box,
      );
    } else chart.setData(data);
    // Plain numbers a test or a screen reader can read without the canvas.
    const total = data.slice(1).reduce((sum, ys) => sum + ys.reduce((a, b) => a + b, 0), 0);
    box.dataset.total = String(total);
    box.dataset.lastSecond = String(data[0][data[0].length - 1] ?? '');
    box.dataset.series = JSON.stringify(data.slice(1).map((ys) => ys.slice(-10)));
    const now = names.map((n, i) => `${n} ${data[i + 1][data[i + 1].length - 1] ?? 0}`).join(', ');
    box.setAttribute('aria-label', `Messages per second over the last 60 seconds; latest: ${now}`);
  }

  // ---- timeline and gaps -----------------------------------------------------------------------

  function renderTimeline(s) {
    const rows = s.switches.map((sw) => {
      const base = sw.timings.firstFailedProbeAt ?? sw.timings.decidedAt ?? sw.at;
      const trigger = sw.who ? `${sw.trigger} by ${sw.who}${sw.reason ? `: ${sw.reason}` : ''}` : sw.trigger;
      return el(
        'tr',
        { 'data-testid': `switch-${sw.seq}` },
        el('td', null, clock(sw.at)),
        el('td', null, `${sw.from ?? '—'} → ${sw.to} (epoch ${sw.epoch})`),
        el(
          'td',
          { className: 'wrap', title: trigger },
          trigger.length > 60 ? `${trigger.slice(0, 59)}…` : trigger,
        ),
        ...FACTORS.map((f) => {
          const t = sw.timings[f];
          return el('td', { className: 'num' }, t === null || t === undefined ? '—' : `+${t - base}`);
        }),
      );
    });
    $('timeline')
      .querySelector('tbody')
      .replaceChildren(...rows);
    $('timeline-empty').hidden = rows.length > 0;
  }

  function renderGaps(s) {
    const rows = s.gapDevices.map((d) =>
      el(
        'tr',
        null,
        el('td', null, d.thingName),
        el('td', { className: 'num' }, d.missing),
        el(
          'td',
          null,
          d.gaps
            .slice(0, 3)
            .map((g) => (g.from === g.to ? String(g.from) : `${g.from}–${g.to}`))
            .join(', ') + (d.gaps.length > 3 ? ', …' : ''),
        ),
        el('td', null, d.lastRegion),
      ),
    );
    $('gaps')
      .querySelector('tbody')
      .replaceChildren(...rows);
    $('gaps-empty').hidden = rows.length > 0;
  }

  function render(s) {
    latest = s;
    renderHeader(s);
    renderRegions(s);
    renderChart(s);
    renderTimeline(s);
    renderGaps(s);
  }

  // ---- live stream ---------------------------------------------------------------------------

  // The stream needs the token in an Authorization header, which EventSource cannot send: it is
  // read with fetch, and its Server-Sent Events parsed here.
  let viewToken = sessionStorage.getItem(VIEW_TOKEN_KEY);
  let stream = null;
  let retryMs = 1000;
  let retryTimer = null;

  function setStatus(text, cls) {
    const status = $('stream-status');
    status.textContent = text;
    status.className = `status ${cls}`;
  }

  function askToken(message) {
    stream?.abort();
    $('view-token').value = '';
    $('view-remember').checked = sessionStorage.getItem(VIEW_TOKEN_KEY) !== null;
    $('view-error').textContent = message ?? '';
    setStatus('signed out', 'down');
    if (!$('signin-dialog').open) $('signin-dialog').showModal();
    $('view-token').focus();
  }

  function signIn(event) {
    event.preventDefault();
    const token = $('view-token').value.trim();
    if (!token) {
      $('view-error').textContent = 'Type a token (reader role or above).';
      return;
    }
    viewToken = token;
    if ($('view-remember').checked) sessionStorage.setItem(VIEW_TOKEN_KEY, token);
    else sessionStorage.removeItem(VIEW_TOKEN_KEY);
    $('view-token').value = '';
    $('signin-dialog').close();
    retryMs = 1000;
    connect();
  }

  function reconnectLater() {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 15000);
  }

  async function problemOf(res) {
    try {
      return await res.json();
    } catch {
      return null;
    }
  }

  /** Renders every `snapshot` event of the stream until it ends. */
  async function follow(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
      let end = buffer.indexOf('\n\n');
      while (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf('\n\n');
        let type = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) type = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        if (type !== 'snapshot' || data.length === 0) continue;
        try {
          render(JSON.parse(data.join('\n')));
        } catch (error) {
          console.error('bad snapshot', error);
        }
      }
    }
  }

  async function connect() {
    clearTimeout(retryTimer);
    if (!viewToken) return askToken();
    stream?.abort();
    const abort = new AbortController();
    stream = abort;
    let res;
    try {
      res = await fetch('/v1/live', {
        headers: { accept: 'text/event-stream', authorization: `Bearer ${viewToken}` },
        cache: 'no-store',
        signal: abort.signal,
      });
    } catch {
      if (abort.signal.aborted) return;
      setStatus('reconnecting…', 'down');
      return reconnectLater();
    }
    if (res.status === 401 || res.status === 403) {
      const body = await problemOf(res);
      viewToken = null;
      sessionStorage.removeItem(VIEW_TOKEN_KEY);
      return askToken(`Refused (${res.status}${body?.code ? ` ${body.code}` : ''}): ${body?.detail ?? ''}`);
    }
    if (!res.ok || !res.body) {
      // Too many live views (503, or 429 for this token): try again with a growing delay.
      const body = await problemOf(res);
      setStatus(`refused (${res.status}${body?.code ? ` ${body.code}` : ''}), retrying…`, 'down');
      return reconnectLater();
    }
    retryMs = 1000;
    setStatus('live', 'live');
    try {
      await follow(res.body);
    } catch {
      // The stream broke: reconnect below.
    }
    if (abort.signal.aborted) return;
    setStatus('reconnecting…', 'down');
    reconnectLater();
  }

  // ---- routing dialog ------------------------------------------------------------------------

  function showStep(step) {
    for (const id of ['step-input', 'step-confirm', 'step-result']) $(id).hidden = id !== step;
  }

  function openDialog(intent) {
    pending = intent;
    const remembered = sessionStorage.getItem(TOKEN_KEY);
    $('admin-token').value = remembered ?? '';
    $('remember-token').checked = remembered !== null;
    $('reason').value = '';
    $('input-error').textContent = '';
    $('dialog-title').textContent = intent.kind === 'failover' ? `Fail over to ${intent.to}` : 'Fail back';
    $('dialog-intent').textContent =
      intent.kind === 'failover'
        ? `Pins ${intent.to} as the active region until a failback, even if it is unhealthy.`
        : 'Clears any routing override and moves the fleet to the highest-priority healthy region.';
    showStep('step-input');
    $('routing-dialog').showModal();
    $(remembered ? 'reason' : 'admin-token').focus();
  }

  function closeDialog() {
    pending = null;
    $('admin-token').value = '';
    $('routing-dialog').close();
  }

  function toConfirm(event) {
    event.preventDefault();
    const token = $('admin-token').value.trim();
    const reason = $('reason').value.trim();
    if (!token || !reason) {
      $('input-error').textContent = !token ? 'Type the admin token.' : 'Say why: the reason is recorded.';
      $(!token ? 'admin-token' : 'reason').focus();
      return;
    }
    if ($('remember-token').checked) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
    $('confirm-text').textContent = `Move the fleet from ${pending.from ?? '?'} to ${pending.to}?`;
    showStep('step-confirm');
    $('confirm-send').focus();
  }

  async function send() {
    const token = $('admin-token').value.trim();
    const reason = $('reason').value.trim();
    const intent = pending;
    $('confirm-send').disabled = true;
    const result = $('result-text');
    try {
      const res = await fetch(intent.kind === 'failover' ? '/v1/routing/failover' : '/v1/routing/failback', {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify(intent.kind === 'failover' ? { to: intent.to, reason } : { reason }),
      });
      const text = await res.text();
      let body = null;
      try {
        body = JSON.parse(text);
      } catch {
        body = null;
      }
      if (res.ok) {
        const state = body?.state;
        result.textContent = state
          ? `Done: the fleet is on ${state.activeRegion}, epoch ${state.epoch}.`
          : `Done (${res.status}).`;
        result.className = 'ok';
      } else {
        result.textContent = `Refused (${res.status}${body?.code ? ` ${body.code}` : ''}): ${body?.detail ?? text}`;
        result.className = 'error';
      }
    } catch (error) {
      result.textContent = `Could not send: ${error.message}`;
      result.className = 'error';
    } finally {
      $('confirm-send').disabled = false;
      $('admin-token').value = '';
    }
    showStep('step-result');
    $('result-close').focus();
  }

  function wire() {
    $('signin-form').addEventListener('submit', signIn);
    // The page shows nothing without a token: Escape does not close the sign-in.
    $('signin-dialog').addEventListener('cancel', (event) => event.preventDefault());
    $('routing-form').addEventListener('submit', toConfirm);
    $('dialog-cancel').addEventListener('click', closeDialog);
    $('confirm-back').addEventListener('click', () => showStep('step-input'));
    $('confirm-send').addEventListener('click', send);
    $('result-close').addEventListener('click', closeDialog);
    // Escape closes the dialog too: never leave the token in the field.
    $('routing-dialog').addEventListener('close', () => {
      pending = null;
      $('admin-token').value = '';
    });
    if (typeof ResizeObserver !== 'undefined')
      new ResizeObserver(() => {
        if (chart) chart.setSize(chartSize($('rate-chart')));
      }).observe($('rate-chart'));
    connect();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', wire);
  else wire();
  // Kept for debugging from the console; the page works without it.
  window.iotdrLatest = () => latest;
})();
