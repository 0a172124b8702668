/** The demo page: plain HTML and one module script using the SDK bundle served at /sdk.js. */
export function demoPage(gatewayUrl: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Outbox Hub demo</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 2rem; max-width: 48rem; color: #1d2330; }
  h1 { font-size: 1.4rem; }
  #status { display: inline-block; padding: .1rem .6rem; border-radius: 1rem; background: #ccc; }
  #status[data-state="open"] { background: #b7ebc6; }
  #status[data-state="reconnecting"] { background: #ffe08a; }
  table { border-collapse: collapse; } td, th { padding: .2rem .8rem; text-align: left; font-size: 13px; }
  ol { padding-left: 1.2rem; } li { margin: .2rem 0; font-family: ui-monospace, monospace; font-size: 13px; }
  button { font: inherit; padding: .4rem .9rem; }
</style>
</head>
<body>
<h1>Outbox Hub live events</h1>
<p>Gateway <code>${gatewayUrl}</code> — connection <span id="status" data-state="connecting">connecting</span>
 — <span id="count">0</span> events</p>
<p><button id="order">Create an order</button> writes an order and its outbox message in one transaction.</p>
<p id="warn" hidden>This server has no multi-document transactions: orders and outbox messages were written one after the other.</p>
<ol id="events"></ol>
<h2>Processes <small>(compacted topic <code>process.state</code>: the latest state of every key, then changes)</small></h2>
<table id="processes"><thead><tr><th>process</th><th>status</th><th>beat</th><th>seq</th></tr></thead><tbody></tbody></table>
<script type="module">
import { createClient } from '/sdk.js';
const status = document.getElementById('status');
const list = document.getElementById('events');
const count = document.getElementById('count');
const seen = new Set();
const client = createClient({
  url: ${JSON.stringify(gatewayUrl)},
  getToken: async () => (await fetch('/token')).text(),
  reconnect: { initialDelayMs: 100, maxDelayMs: 1000 },
  onStateChange: (s) => { status.textContent = s; status.dataset.state = s; },
});
client.ready().then(() => { status.textContent = client.state; status.dataset.state = client.state; });
await client.subscribe('orders.*', {}, (payload, event) => {
  if (seen.has(event.id)) return;
  seen.add(event.id);
  const li = document.createElement('li');
  li.dataset.id = event.id;
  li.textContent = event.topic + ' #' + event.seq + ' ' + JSON.stringify(payload);
  list.prepend(li);
  count.textContent = String(seen.size);
});
// A page opened late still shows every process at once: the snapshot first, then live changes.
const rows = new Map();
await client.subscribe('process.state', { from: 'snapshot' }, (state, event) => {
  let row = rows.get(event.key);
  if (!row) {
    row = document.createElement('tr');
    row.dataset.key = event.key;
    rows.set(event.key, row);
    document.querySelector('#processes tbody').append(row);
  }
  row.innerHTML = '';
  for (const text of [event.key, state.status, String(state.beat), String(event.seq)]) {
    const td = document.createElement('td');
    td.textContent = text;
    row.append(td);
  }
});
document.getElementById('order').addEventListener('click', async () => {
  const res = await fetch('/orders', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ item: 'coffee', qty: 1 }) });
  const body = await res.json();
  document.getElementById('warn').hidden = body.atomic !== false;
});
</script>
</body>
</html>`;
}
