/**
 * The dashboard: an HTML page, its script and its styles (no CDN, no build
 * step), served from ops itself. The page polls the JSON API and draws tables
 * and SVG sparklines. Nothing is inline, so the Content-Security-Policy can
 * allow scripts and styles from 'self' only; everything interpolated into
 * markup goes through esc().
 */
export function dashboardPage(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Outbox Hub ops</title>
<link rel="stylesheet" href="/assets/dashboard.css">
</head>
<body>
<h1>Outbox Hub <span id="summary" class="ok">loading…</span></h1>
<div id="updated" class="mute">not updated yet</div>
<div id="err"></div>
<div class="cards" id="cards"></div>
<div class="charts">
  <div class="card"><div class="l">pending messages</div><svg id="c-backlog" viewBox="0 0 300 60" preserveAspectRatio="none"></svg></div>
  <div class="card"><div class="l">consumer lag (events)</div><svg id="c-lag" viewBox="0 0 300 60" preserveAspectRatio="none"></svg></div>
  <div class="card"><div class="l">throughput (events/s)</div><svg id="c-rate" viewBox="0 0 300 60" preserveAspectRatio="none"></svg></div>
</div>
<div class="grid2">
  <div><h2>Outbox backlog by partition</h2><table id="t-backlog"></table></div>
  <div><h2>Leases</h2><table id="t-leases"></table></div>
</div>
<h2>Consumer groups</h2><table id="t-groups"></table>
<h2>Retention by log partition</h2><table id="t-retention"></table>
<h2>Retention by topic</h2><div id="topics-note" class="mute"></div><table id="t-topics"></table>
<h2>Stalled log partitions</h2><table id="t-stalls"></table>
<h2>Dead letters</h2><table id="t-dead"></table>
<h2>Event</h2>
<form id="f-event"><input id="event-id" placeholder="event id" maxlength="128" size="40"> <button type="submit">Look up</button></form>
<div class="grid2">
  <div><table id="t-event"></table></div>
  <div><table id="t-caused"></table></div>
</div>
<script type="module" src="/assets/dashboard.js"></script>
</body>
</html>`;
}

/** The dashboard's script (served at /assets/dashboard.js). */
export function dashboardScript(): string {
  return `const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
const hist = { backlog: [], lag: [], rate: [] };
let lastOk;
const token = (kind) => sessionStorage.getItem(kind) || '';
async function api(path, init = {}, kind = 'read') {
  const t = token(kind) || token('admin');
  const res = await fetch(path, { ...init, headers: t ? { authorization: 'Bearer ' + t } : {} });
  if (res.status === 401) {
    const v = prompt(kind === 'admin' ? 'Admin token' : 'Read token');
    if (v) { sessionStorage.setItem(kind, v); return api(path, init, kind); }
  }
  const body = await res.json();
  if (!res.ok) throw new Error(body.error + ': ' + body.message);
  return body;
}
function spark(id, values) {
  const max = Math.max(1, ...values);
  const pts = values.map((v, i) => (i * 300 / Math.max(1, values.length - 1)).toFixed(1) + ',' + (58 - v / max * 54).toFixed(1)).join(' ');
  $(id).innerHTML = '<polyline points="' + pts + '"/><text x="2" y="11" font-size="10" fill="#57606a">max ' + max.toFixed(0) + '</text>';
}
const bytes = (n) => n < 1024 ? n + ' B' : n < 1048576 ? (n / 1024).toFixed(1) + ' KiB' : n < 1073741824 ? (n / 1048576).toFixed(1) + ' MiB' : (n / 1073741824).toFixed(2) + ' GiB';
const age = (s) => s < 1 ? '0s' : s < 120 ? s.toFixed(0) + 's' : (s / 60).toFixed(1) + 'm';
function table(id, head, rows) {
  $(id).innerHTML = '<tr>' + head.map((h) => '<th>' + h + '</th>').join('') + '</tr>' + (rows.join('') || '<tr><td colspan="' + head.length + '">none</td></tr>');
}
async function refresh() {
  try {
    const o = await api('/api/overview');
    $('err').textContent = '';
    const lag = o.groups.reduce((n, g) => n + g.lagEvents, 0);
    for (const [k, v] of [['backlog', o.backlog.pending], ['lag', lag], ['rate', o.throughputPerSecond]]) { hist[k].push(v); if (hist[k].length > 90) hist[k].shift(); }
    spark('c-backlog', hist.backlog); spark('c-lag', hist.lag); spark('c-rate', hist.rate);
    const problems = [];
    if (!o.leases.drainers.length) problems.push('no drainer alive');
    if (o.unownedPartitions.length) problems.push(o.unownedPartitions.length + ' partitions without a drainer');
    if (o.lapsed.drainers.length) problems.push(o.lapsed.drainers.length + ' drainer(s) stopped without leaving in the last hour (' + o.lapsed.drainers.map((m) => m.member + ', ' + age((Date.now() - Date.parse(m.expiresAt)) / 1000) + ' ago').join('; ') + ')');
    if (o.lapsed.gateways.length) problems.push(o.lapsed.gateways.length + ' gateway(s) stopped without leaving in the last hour (' + o.lapsed.gateways.map((m) => m.member + ', ' + age((Date.now() - Date.parse(m.expiresAt)) / 1000) + ' ago').join('; ') + ')');
    if (o.backlog.oldestPendingAgeSeconds > 60) problems.push('oldest pending ' + age(o.backlog.oldestPendingAgeSeconds));
    if (o.backlog.dead) problems.push(o.backlog.dead + ' dead messages');
    if (o.groupDeadLetters) problems.push(o.groupDeadLetters + ' group dead letters');
    if (o.stalledPartitions.length) problems.push(o.stalledPartitions.length + ' log partitions stalled behind a missing sequence');
    const laggy = o.groups.filter((g) => g.maxLagSeconds > 60);
    if (laggy.length) problems.push('lagging: ' + laggy.map((g) => g.group).join(', '));
    const orphaned = o.groups.filter((g) => !g.gateways && g.lagEvents);
    if (orphaned.length) problems.push('no consumers: ' + orphaned.map((g) => g.group).join(', '));
    $('summary').textContent = problems.length ? '— ' + problems.join('; ') : '— all healthy';
    $('summary').className = problems.length ? 'bad' : 'ok';
    const card = (l, v, cls = '') => '<div class="card"><div class="v ' + cls + '">' + v + '</div><div class="l">' + l + '</div></div>';
    $('cards').innerHTML = card('pending', o.backlog.pending, o.backlog.pending ? 'warn' : 'ok') + card('oldest pending', age(o.backlog.oldestPendingAgeSeconds), o.backlog.oldestPendingAgeSeconds > 60 ? 'bad' : 'ok')
      + card('dead', o.backlog.dead, o.backlog.dead ? 'bad' : 'ok') + card('throughput /s', o.throughputPerSecond) + card('drainers alive', o.leases.drainers.length, o.leases.drainers.length ? 'ok' : 'bad')
      + card('gateways alive', o.leases.gateways.length) + card('unowned partitions', o.unownedPartitions.length, o.unownedPartitions.length ? 'bad' : 'ok') + card('group lag (events)', lag, lag ? 'warn' : 'ok');
    table('t-backlog', ['partition', 'pending', 'oldest', 'dead', 'head', 'rate/s'], o.backlog.byPartition.map((b) => {
      const h = o.partitionHeads[b.partition] || {};
      const cls = b.dead || b.oldestPendingAgeSeconds > 60 ? 'bad' : b.pending ? 'warn' : '';
      return '<tr class="' + cls + '"><td class="n">' + b.partition + '</td><td class="n">' + b.pending + '</td><td class="n">' + age(b.oldestPendingAgeSeconds) + '</td><td class="n">' + b.dead + '</td><td class="n">' + (h.head ?? '') + '</td><td class="n">' + (h.ratePerSecond ?? '') + '</td></tr>';
    }));
    table('t-leases', ['partition', 'holder', 'epoch', 'expires in'], o.leases.partitions.map((l) =>
      '<tr class="' + (l.live ? '' : 'bad') + '"><td class="n">' + l.partition + '</td><td>' + esc(l.holder ?? 'nobody') + '</td><td class="n">' + l.epoch + '</td><td class="n">' + (l.expiresAt ? age((Date.parse(l.expiresAt) - Date.now()) / 1000) : '') + '</td></tr>'));
    // Bytes not yet exact (counting still catching up, or a block cut by a trim pro-rated) carry a ~.
    table('t-retention', ['partition', 'first held', 'last', 'held', 'bytes held', 'trimmed', 'oldest held', 'snapshot to'], (o.retention ?? []).map((r) =>
      '<tr><td class="n">' + r.partition + '</td><td class="n">' + r.first + '</td><td class="n">' + r.last + '</td><td class="n">' + r.retained + '</td><td class="n">' + (r.exact ? '' : '~') + bytes(r.bytes) + '</td><td class="n">' + r.trimmed + '</td><td class="n">' + age(r.oldestAgeSeconds) + '</td><td class="n">' + r.compactedTo + '</td></tr>'));
    const rt = await api('/api/retention');
    $('topics-note').textContent = 'counted from the log as of ' + new Date(rt.sampledAt).toLocaleTimeString() + (rt.exact ? '' : ' (~: still counting, estimates)') + '; trimmed: seen by this ops process since it started';
    table('t-topics', ['topic', 'held', 'bytes held', 'trimmed'], rt.topics.map((t) =>
      '<tr><td>' + esc(t.topic) + '</td><td class="n">' + (rt.exact ? '' : '~') + t.events + '</td><td class="n">' + (rt.exact ? '' : '~') + bytes(t.bytes) + '</td><td class="n">' + t.trimmedSinceStart + '</td></tr>'));
    const lagText = (g) => (g.lagExact ? '' : '~') + g.lagEvents;
    table('t-groups', ['group', 'filter', 'gateways', 'lag (events)', 'max lag', 'dead letters', ''], o.groups.map((g) =>
      '<tr class="' + (g.deadLetters || g.maxLagSeconds > 60 || (!g.gateways && g.lagEvents) ? 'bad' : g.lagEvents ? 'warn' : '') + '"><td>' + esc(g.group) + '</td><td>' + esc(g.filter) + (g.tags ? ' <span class="mute">tags ' + g.tags.map(esc).join(', ') + '</span>' : '') + '</td><td class="n">' + g.gateways + '</td><td class="n">' + lagText(g) + '</td><td class="n">' + age(g.maxLagSeconds) + '</td><td class="n">' + g.deadLetters + '</td><td>' + (g.gateways ? '' : '<button data-delete-group="' + esc(g.group) + '">Delete group</button>') + '</td></tr>'));
    table('t-stalls', ['partition', 'missing', 'since', 'reported by', ''], o.stalledPartitions.map((r) =>
      '<tr class="bad"><td class="n">' + r.partition + '</td><td class="n">' + r.gap.from + (r.gap.to > r.gap.from ? '..' + r.gap.to : '') + '</td><td class="n">' + age((Date.now() - Date.parse(r.since)) / 1000) + '</td><td>' + esc(r.reporter) + '</td><td><button data-repair="' + r.partition + '" data-after="' + (r.gap.from - 1) + '">Fill with gap events</button></td></tr>'));
    const d = await api('/api/dead-letters?limit=20');
    const rows = d.outbox.map((m) => '<tr class="bad"><td>outbox p' + m.partition + '</td><td>' + esc(m.id) + '</td><td>' + esc(m.topic) + '</td><td>' + esc(m.lastError ?? '') + '</td><td><button data-requeue="' + esc(m.id) + '">Requeue</button></td></tr>');
    for (const g of d.groups) for (const l of g.letters) rows.push('<tr class="bad"><td>group ' + esc(g.group) + '</td><td>' + esc(l.event.id) + '</td><td>' + esc(l.event.topic) + '</td><td>' + esc(l.reason) + ' after ' + l.deliveries + ' deliveries</td><td><button data-replay="' + esc(g.group) + '" data-id="' + esc(l.event.id) + '">Replay</button></td></tr>');
    table('t-dead', ['where', 'id', 'topic', 'why', ''], rows);
    lastOk = new Date();
    $('updated').textContent = 'updated ' + lastOk.toLocaleTimeString() + ' (server sample ' + new Date(o.sampledAt).toLocaleTimeString() + ')';
    $('updated').className = 'mute';
  } catch (e) {
    $('err').textContent = 'refresh failed: ' + e.message;
    $('updated').textContent = lastOk ? 'showing data from ' + lastOk.toLocaleTimeString() + ' (refresh failing)' : 'not updated yet';
    $('updated').className = 'bad';
  }
}
// One event: its fields (tags, causes, trace context) and the events that name it as their cause;
// a cause or an effect is looked up in turn by clicking it.
async function showEvent(id) {
  $('event-id').value = id;
  const link = (x) => '<button type="button" data-event="' + esc(x) + '">' + esc(x) + '</button>';
  try {
    const path = '/api/events/' + encodeURIComponent(id);
    const [e, c] = await Promise.all([api(path), api(path + '/caused?limit=50')]);
    // [label, cell id, value]
    const fields = [['id', 'id-value', esc(e.id)], ['topic', 'topic', esc(e.topic)], ['key', 'key', esc(e.key ?? '')],
      ['partition / seq', 'position', e.partition + ' / ' + e.seq], ['published', 'published', esc(e.publishedAt)],
      ['tags', 'tags', (e.tags ?? []).map(esc).join(', ')], ['caused by', 'caused-by', (e.causedBy ?? []).map(link).join(' ')],
      ['traceparent', 'traceparent', esc(e.traceparent ?? '')], ['payload', 'payload', esc(JSON.stringify(e.payload).slice(0, 2000))]];
    table('t-event', ['field', 'value'], fields.map(([k, id, v]) => '<tr><td>' + k + '</td><td id="event-' + id + '">' + v + '</td></tr>'));
    table('t-caused', ['caused (newest 50)', 'topic', 'tags', 'published'], c.events.map((x) =>
      '<tr><td>' + link(x.id) + '</td><td>' + esc(x.topic) + '</td><td>' + (x.tags ?? []).map(esc).join(', ') + '</td><td>' + esc(x.publishedAt) + '</td></tr>'));
  } catch (err) {
    table('t-event', ['field', 'value'], ['<tr class="bad"><td>' + esc(id) + '</td><td>' + esc(err.message) + '</td></tr>']);
    table('t-caused', ['caused', 'topic', 'tags', 'published'], []);
  }
}
$('f-event').addEventListener('submit', (ev) => { ev.preventDefault(); const id = $('event-id').value.trim(); if (id) void showEvent(id); });
document.body.addEventListener('click', async (ev) => {
  const b = ev.target.closest('button'); if (!b || b.form) return; // a form's button submits it
  if (b.dataset.event) return void showEvent(b.dataset.event);
  try {
    if (b.dataset.requeue) await api('/api/outbox/' + encodeURIComponent(b.dataset.requeue) + '/requeue', { method: 'POST' }, 'admin');
    if (b.dataset.repair) await api('/api/partitions/' + b.dataset.repair + '/repair?after=' + b.dataset.after, { method: 'POST' }, 'admin');
    if (b.dataset.replay) await api('/api/groups/' + encodeURIComponent(b.dataset.replay) + '/dead-letters/' + encodeURIComponent(b.dataset.id) + '/replay', { method: 'POST' }, 'admin');
    if (b.dataset.deleteGroup) {
      if (!confirm('Delete consumer group ' + b.dataset.deleteGroup + ' with its cursors and dead letters?')) return;
      await api('/api/groups/' + encodeURIComponent(b.dataset.deleteGroup), { method: 'DELETE' }, 'admin');
    }
    b.textContent = 'done'; b.disabled = true;
  } catch (e) { $('err').textContent = e.message; }
});
// One poll at a time: the next starts 2 s after the previous one finished, so a slow server never piles requests up.
(async function poll() { await refresh(); setTimeout(poll, 2000); })();
`;
}

/** The dashboard's styles (served at /assets/dashboard.css). */
export function dashboardStyles(): string {
  return `  :root { --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --mute: #57606a; }
  body { font: 14px/1.45 system-ui, sans-serif; margin: 1.2rem 1.6rem; color: #1f2328; background: #f6f8fa; }
  h1 { font-size: 1.3rem; margin: 0 0 .8rem; } h2 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
  .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: .6rem; }
  .card { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: .6rem .8rem; }
  .card .v { font-size: 1.5rem; font-weight: 600; } .card .l { color: var(--mute); font-size: 12px; }
  .ok { color: var(--ok); } .warn { color: var(--warn); } .bad { color: var(--bad); }
  .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: .6rem; margin-top: .6rem; }
  svg { width: 100%; height: 60px; } polyline { fill: none; stroke: #0969da; stroke-width: 2; }
  table { border-collapse: collapse; background: #fff; width: 100%; font-size: 13px; }
  th, td { border: 1px solid #d0d7de; padding: .25rem .5rem; text-align: left; } th { background: #eaeef2; }
  td.n { text-align: right; font-variant-numeric: tabular-nums; }
  tr.bad td { background: #ffebe9; } tr.warn td { background: #fff8c5; }
  .grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 1rem; }
  button { font: inherit; font-size: 12px; } #f-event { margin-bottom: .4rem; } #err { color: var(--bad); } .mute { color: var(--mute); font-size: 12px; }
  #updated { margin: -.5rem 0 .6rem; } #updated.bad { color: var(--bad); }
`;
}
