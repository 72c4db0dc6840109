// The listening page: draws the scene from above, sends the listener's pose,
// plays the server's binaural blocks through an AudioWorklet.
// window.listen exposes the state and what was received (tests read it).
'use strict';

const HEADER = 8;           // float32 values before the samples of a block
// Blocks the page holds (the jitter buffer); ?buffer=N in the URL changes it.
const CREDITS = Math.max(1, Math.min(16, Number(new URLSearchParams(location.search).get('buffer')) || 4));
const KEEP = 1 << 15;       // samples kept per ear in window.listen.recent

const L = window.listen = {
  scene: null, ws: null, ctx: null, node: null, gain: null,
  pose: {x: 0, y: 0, yaw: 0}, poseSeq: 0, sentAt: new Map(),
  output: 'model', model: 0, nearest: null,
  stats: {blocks: [], received: 0, played: 0, underruns: 0, renderMs: null,
          latencyMs: null, audioState: 'none', sourceName: '', sourceId: 0,
          notices: [], errors: []},
  recent: {l: new Float32Array(KEEP), r: new Float32Array(KEEP), n: 0},
};

const $ = (id) => document.getElementById(id);
const canvas = $('scene');
const g2 = canvas.getContext('2d');

function notice(text, isError) {
  (isError ? L.stats.errors : L.stats.notices).push(text);
  const d = document.createElement('div');
  d.textContent = text;
  if (isError) d.className = 'error';
  const box = $('notices');
  box.prepend(d);
  while (box.children.length > 6) box.lastChild.remove();
}

// ------------------------------------------------------------------ geometry
let view = {sx: 1, ox: 0, oy: 0};

function fitView() {
  const s = L.scene;
  const xs = [], ys = [];
  const add = (x, y) => { xs.push(x); ys.push(y); };
  if (s.room) { add(s.room[0][0], s.room[0][1]); add(s.room[1][0], s.room[1][1]); }
  s.poses.forEach(p => add(p[0], p[1]));
  if (s.source) add(s.source[0], s.source[1]);
  if (!s.room) s.models[0].gaussians.x.forEach((x, i) => add(x, s.models[0].gaussians.y[i]));
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const pad = 0.08 * Math.max(x1 - x0, y1 - y0, 0.5);
  const sx = Math.min(canvas.width / (x1 - x0 + 2 * pad), canvas.height / (y1 - y0 + 2 * pad));
  view = {sx, ox: (canvas.width - sx * (x0 + x1)) / 2, oy: (canvas.height + sx * (y0 + y1)) / 2};
}
// World (top-view x right, y up) to canvas pixels and back.
L.toScreen = (x, y) => [view.ox + view.sx * x, view.oy - view.sx * y];
L.toWorld = (px, py) => [(px - view.ox) / view.sx, (view.oy - py) / view.sx];

function viridis(t) {  // a short viridis-like ramp, t in [0, 1]
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const u = Math.max(0, Math.min(1, t)) * (stops.length - 1);
  const i = Math.min(Math.floor(u), stops.length - 2), f = u - i;
  const c = stops[i].map((v, k) => Math.round(v + f * (stops[i + 1][k] - v)));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

function draw() {
  const s = L.scene;
  g2.clearRect(0, 0, canvas.width, canvas.height);
  if (s.room) {
    const [a, b] = [L.toScreen(...s.room[0]), L.toScreen(...s.room[1])];
    g2.strokeStyle = '#444'; g2.lineWidth = 2;
    g2.strokeRect(Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.abs(b[0] - a[0]),
                  Math.abs(b[1] - a[1]));
  }
  const gs = s.models[L.model].gaussians;
  g2.globalAlpha = 0.55;
  for (let i = 0; i < gs.x.length; i++) {
    const [px, py] = L.toScreen(gs.x[i], gs.y[i]);
    g2.fillStyle = viridis(gs.c[i]);
    g2.fillRect(px - 1.5, py - 1.5, 3, 3);
  }
  g2.globalAlpha = 1;
  s.poses.forEach((p, i) => {
    const [px, py] = L.toScreen(p[0], p[1]);
    const hot = L.output === 'recorded' && i === L.nearest;
    g2.fillStyle = hot ? '#e60' : '#2b6cb0';
    g2.beginPath(); g2.arc(px, py, hot ? 6 : 3.5, 0, 2 * Math.PI); g2.fill();
    g2.strokeStyle = g2.fillStyle; g2.lineWidth = 1;
    g2.beginPath(); g2.moveTo(px, py);
    g2.lineTo(px + 10 * Math.cos(p[2]), py - 10 * Math.sin(p[2])); g2.stroke();
  });
  if (s.source) star(...L.toScreen(...s.source));
  head();
}

function star(x, y) {
  g2.fillStyle = '#d22'; g2.strokeStyle = '#000'; g2.lineWidth = 1;
  g2.beginPath();
  for (let k = 0; k < 10; k++) {
    const r = k % 2 ? 5 : 12, a = -Math.PI / 2 + k * Math.PI / 5;
    g2.lineTo(x + r * Math.cos(a), y + r * Math.sin(a));
  }
  g2.closePath(); g2.fill(); g2.stroke();
}

function head() {
  const [x, y] = L.toScreen(L.pose.x, L.pose.y);
  const c = Math.cos(L.pose.yaw), s = -Math.sin(L.pose.yaw);  // screen y is down
  g2.fillStyle = '#fff'; g2.strokeStyle = '#111'; g2.lineWidth = 2;
  g2.beginPath(); g2.arc(x, y, 11, 0, 2 * Math.PI); g2.fill(); g2.stroke();
  g2.beginPath(); g2.moveTo(x + 11 * c - 5 * s, y + 11 * s + 5 * c);
  g2.lineTo(x + 19 * c, y + 19 * s); g2.lineTo(x + 11 * c + 5 * s, y + 11 * s - 5 * c);
  g2.fillStyle = '#111'; g2.fill();
  g2.font = 'bold 10px sans-serif'; g2.textAlign = 'center'; g2.textBaseline = 'middle';
  // The head's left is the facing direction turned +90 degrees (world), i.e. on
  // screen (y down) the vector (s, -c).
  g2.fillText('L', x + 17 * s, y - 17 * c); g2.fillText('R', x - 17 * s, y + 17 * c);
}

// ------------------------------------------------------------------ pose input
let dirty = true, dragging = false, stale = true;  // pose to send; canvas to redraw
L.redraw = () => { stale = true; };

L.setPose = (x, y, yaw) => {
  L.pose = {x, y, yaw: yaw === undefined ? L.pose.yaw : yaw};
  dirty = stale = true;
};

function eventWorld(e) {
  const r = canvas.getBoundingClientRect();
  return L.toWorld((e.clientX - r.left) * canvas.width / r.width,
                   (e.clientY - r.top) * canvas.height / r.height);
}
canvas.addEventListener('mousedown', (e) => { dragging = true; L.setPose(...eventWorld(e)); });
window.addEventListener('mousemove', (e) => { if (dragging) L.setPose(...eventWorld(e)); });
window.addEventListener('mouseup', () => { dragging = false; });
canvas.addEventListener('wheel', (e) => {
  e.preventDefault();
  L.setPose(L.pose.x, L.pose.y, L.pose.yaw - Math.sign(e.deltaY) * Math.PI / 36);
}, {passive: false});
window.addEventListener('keydown', (e) => {
  const p = L.pose, step = 0.05 * Math.max(1, 100 / view.sx);
  if (e.key === 'ArrowLeft') L.setPose(p.x, p.y, p.yaw + Math.PI / 36);
  else if (e.key === 'ArrowRight') L.setPose(p.x, p.y, p.yaw - Math.PI / 36);
  else if (e.key === 'w' || e.key === 'ArrowUp')
    L.setPose(p.x + step * Math.cos(p.yaw), p.y + step * Math.sin(p.yaw));
  else if (e.key === 's' || e.key === 'ArrowDown')
    L.setPose(p.x - step * Math.cos(p.yaw), p.y - step * Math.sin(p.yaw));
  else return;
  e.preventDefault();
});

function frame() {  // at most one pose message per animation frame
  if (dirty && L.ws && L.ws.readyState === 1) {
    dirty = false;
    const seq = ++L.poseSeq;
    L.sentAt.set(seq, performance.now());
    L.ws.send(JSON.stringify({type: 'pose', seq, ...L.pose}));
    $('pose').textContent = `${L.pose.x.toFixed(2)}, ${L.pose.y.toFixed(2)}, ` +
        `${(L.pose.yaw * 180 / Math.PI).toFixed(0)}\u00b0`;
  }
  if (L.scene && stale) { stale = false; draw(); }
  requestAnimationFrame(frame);
}

// ------------------------------------------------------------------ audio
async function startAudio() {
  if (L.ctx) {
    await L.ctx.resume();
    $('start').textContent = L.ctx.state === 'running' ? 'Audio running' : 'Start audio';
    return;
  }
  const ctx = L.ctx = new AudioContext({sampleRate: L.scene.sample_rate,
                                       latencyHint: 'interactive'});
  await ctx.audioWorklet.addModule('/static/worklet.js');
  const node = L.node = new AudioWorkletNode(ctx, 'block-player',
                                             {numberOfInputs: 0, outputChannelCount: [2]});
  L.gain = ctx.createGain();
  L.gain.gain.value = Number($('volume').value);
  node.connect(L.gain).connect(ctx.destination);
  node.port.onmessage = (e) => onWorklet(e.data);
  for (const m of L.pending.splice(0)) toWorklet(m);
  ctx.onstatechange = () => { L.stats.audioState = ctx.state; };
  L.stats.audioState = ctx.state;
  if (ctx.state !== 'running') {
    try { await ctx.resume(); } catch (err) { /* needs a click: the Start button */ }
  }
  L.stats.audioState = ctx.state;
  $('start').textContent = ctx.state === 'running' ? 'Audio running' : 'Start audio';
}

function onWorklet(m) {
  if (m.type === 'done') {
    L.stats.played++;
    if (L.ws && L.ws.readyState === 1) L.ws.send('{"type":"credit","n":1}');
  } else if (m.type === 'playing') {
    const t0 = L.sentAt.get(m.poseSeq);
    if (t0 !== undefined) {
      const out = 1000 * ((L.ctx.outputLatency || 0) + (L.ctx.baseLatency || 0));
      L.stats.latencyMs = performance.now() - t0 + out;
      for (const k of L.sentAt.keys()) if (k <= m.poseSeq) L.sentAt.delete(k);
    }
  } else if (m.type === 'underrun') {
    L.stats.underruns++;
  }
}

function onBlock(buf) {
  const a = new Float32Array(buf);
  const b = L.scene.block;
  const h = {seq: a[0], renderMs: a[1], poseSeq: a[2], code: a[3], sourceId: a[4]};
  const l = a.slice(HEADER, HEADER + b), r = a.slice(HEADER + b, HEADER + 2 * b);
  let el = 0, er = 0;
  for (let i = 0; i < b; i++) { el += l[i] * l[i]; er += r[i] * r[i]; }
  L.stats.received++;
  L.stats.renderMs = L.stats.renderMs === null ? h.renderMs
                                               : 0.9 * L.stats.renderMs + 0.1 * h.renderMs;
  L.stats.blocks.push({...h, msL: el / b, msR: er / b});
  if (L.stats.blocks.length > 2000) L.stats.blocks.splice(0, 500);
  const rec = L.recent, n = rec.n % KEEP;
  const m = Math.min(b, KEEP - n);
  rec.l.set(l.subarray(0, m), n); rec.r.set(r.subarray(0, m), n);
  if (m < b) { rec.l.set(l.subarray(m), 0); rec.r.set(r.subarray(m), 0); }
  rec.n += b;
  toWorklet({...h, l, r});
}
// Blocks that arrive before the AudioWorklet exists (the socket can open and the
// server render the first credits' worth while addModule is still loading) wait
// here: dropping them would leave the server waiting for credits that never come.
L.pending = [];
function toWorklet(m) {
  if (L.node) L.node.port.postMessage(m, [m.l.buffer, m.r.buffer]);
  else L.pending.push(m);
}
// The newest `count` samples per ear, oldest first (for tests).
L.lastSamples = (count) => {
  const rec = L.recent, n = Math.min(count, rec.n, KEEP), out = {l: [], r: []};
  for (let i = rec.n - n; i < rec.n; i++) {
    out.l.push(rec.l[i % KEEP]); out.r.push(rec.r[i % KEEP]);
  }
  return out;
};

// ------------------------------------------------------------------ socket
function connect() {
  const ws = L.ws = new WebSocket(`ws://${location.host}/ws`);
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => {
    ws.send(JSON.stringify({type: 'start', credits: CREDITS}));
    dirty = true;
  };
  ws.onmessage = (e) => {
    if (typeof e.data !== 'string') return onBlock(e.data);
    const m = JSON.parse(e.data);
    if (m.type === 'error') notice(m.message, true);
    else if (m.type === 'source') {
      L.stats.sourceName = m.name; L.stats.sourceId = m.id;
      $('source-name').textContent = `${m.name} (${m.seconds.toFixed(1)} s)`;
      if (m.notice) notice(`${m.name}: ${m.notice}`);
    } else if (m.type === 'nearest') { L.nearest = m.index; L.redraw(); }
    else if (m.type === 'ready') {
      L.stats.sourceName = m.source;
      L.nearest = m.nearest; L.redraw();
      $('source-name').textContent = m.source;
    }
  };
  ws.onclose = () => notice('connection to the server closed: reload the page', true);
}

function sendFile(file) {
  if (!file) return;
  if (file.size > 64 * 1024 * 1024) return notice(`${file.name}: larger than 64 MiB`, true);
  file.arrayBuffer().then((buf) => {
    L.ws.send(JSON.stringify({type: 'upload', name: file.name}));
    L.ws.send(buf);
    notice(`${file.name}: sent, decoding on the server`);
  });
}
const stage = $('stage');
stage.addEventListener('dragover', (e) => { e.preventDefault(); stage.classList.add('dragover'); });
stage.addEventListener('dragleave', () => stage.classList.remove('dragover'));
stage.addEventListener('drop', (e) => {
  e.preventDefault(); stage.classList.remove('dragover');
  sendFile(e.dataTransfer.files[0]);
});
$('file').addEventListener('change', (e) => sendFile(e.target.files[0]));
$('scene-source').addEventListener('click',
                                   () => L.ws.send(JSON.stringify({type: 'scene_source'})));
$('start').addEventListener('click', startAudio);
$('volume').addEventListener('input', (e) => { if (L.gain) L.gain.gain.value = Number(e.target.value); });

function setOutput(output, model) {
  L.output = output; L.model = model; L.redraw();
  L.ws.send(JSON.stringify({type: 'output', output, model}));
}
L.setOutput = setOutput;

function buildAB() {
  const box = $('ab');
  const opts = L.scene.models.map((m, i) => ['model', i, m.label]);
  opts.push(['recorded', L.model, 'Recorded clip, nearest training pose']);
  opts.forEach(([out, i, label], k) => {
    const lab = document.createElement('label');
    const r = document.createElement('input');
    r.type = 'radio'; r.name = 'ab'; r.checked = k === 0; r.id = `ab-${k}`;
    r.addEventListener('change', () => setOutput(out, out === 'model' ? i : L.model));
    lab.append(r, ' ', label);
    box.append(lab);
  });
}

function showStats() {
  const s = L.stats, last = s.blocks.slice(-20);
  const db = (v) => (10 * Math.log10(v + 1e-12)).toFixed(1);
  const mean = (k) => last.reduce((t, b) => t + b[k], 0) / Math.max(last.length, 1);
  $('render-ms').textContent = s.renderMs === null ? '\u2013' : `${s.renderMs.toFixed(2)} ms ` +
      `(block ${(1000 * L.scene.block / L.scene.sample_rate).toFixed(1)} ms)`;
  $('latency-ms').textContent = s.latencyMs === null ? '\u2013' : `${s.latencyMs.toFixed(0)} ms`;
  $('levels').textContent = last.length ? `${db(mean('msL'))} / ${db(mean('msR'))} dB` : '\u2013';
  $('blocks').textContent = `${s.received} / ${s.underruns}`;
}

async function main() {
  L.scene = await (await fetch('/api/scene')).json();
  const [x, y, yaw] = L.scene.start;
  L.pose = {x, y, yaw};
  canvas.width = Math.max(420, Math.min(900, window.innerWidth - 350));
  canvas.height = Math.max(360, Math.min(760, window.innerHeight - 30));
  fitView();
  buildAB();
  connect();
  requestAnimationFrame(frame);
  setInterval(showStats, 250);
  startAudio().catch((err) => notice(`audio: ${err}`, true));
}
main();
