/**
 * @fileoverview The live page: microphone -> server -> words lighting up.
 *
 * Connects to the server's WebSocket (`/ws`), which announces the model's
 * labels and sample rate; builds a tile per word; on "Start listening"
 * captures the microphone with an audio worklet (capture-worklet.js) that
 * resamples it to the model's rate and sends int16 frames. Detections light
 * their tile up for a moment and go into the log; live scores drive the
 * meters. The protocol is described in kws_jax/serve.py.
 */

const FRAME_MS = 100;  // Audio per frame sent.
const LIT_MS = 1200;  // How long a detected word stays lit.
const LOG_SIZE = 20;
const LEVEL_FALL = 0.04;  // Level meter fall per frame (of 0..1).
// Drop audio rather than fall behind when the server is this far behind.
const MAX_BACKLOG_MS = 2000;
const CLOSE_CODES = {
  1001: 'The server is stopping.',
  1008: 'Too many bad messages; the server closed the connection.',
  1009: 'A frame was too big; the server closed the connection.',
  1011: 'The model failed on the server.',
  1013: 'The server is busy.',
  4408: 'Disconnected after being idle.',
};

const $ = (id) => document.getElementById(id);

const app = {
  ws: null,
  hello: null,
  connecting: null,
  audio: null,  // {context, stream, node} while listening.
  tiles: new Map(),  // label -> {tile, bar, count, timer, hits}
  level: 0,  // Level meter, 0..1.
  unknownTimer: 0,
};

/** '_unknown_' -> 'unknown'; words as they are. */
function displayName(label) {
  return label.replace(/^_+|_+$/g, '');
}

/** Labels such as _silence_ and _unknown_ get no tile. */
function isWord(label) {
  return !/^_.*_$/.test(label);
}

function setStatus(state, text) {
  const status = $('status');
  status.dataset.state = state;
  status.textContent = text;
}

function showMessage(text) {
  const message = $('message');
  message.textContent = text || '';
  message.hidden = !text;
}

function buildWords(labels) {
  const words = $('words');
  words.replaceChildren();
  app.tiles.clear();
  for (const label of labels.filter(isWord)) {
    const tile = document.createElement('div');
    tile.className = 'tile';
    tile.dataset.label = label;
    tile.dataset.hits = '0';
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = displayName(label);
    const count = document.createElement('span');
    count.className = 'count';
    count.setAttribute('aria-label', 'times heard');
    const bar = document.createElement('i');
    bar.className = 'bar';
    tile.append(name, count, bar);
    words.append(tile);
    app.tiles.set(label, {tile, bar, count, timer: 0, hits: 0});
  }
}

// " (off 0.3, up 0.8)": the labels whose threshold differs from the rest.
function ownThresholds(thresholds) {
  const pairs = Object.entries(thresholds).map(
      ([label, value]) => `${label} ${value}`);
  return pairs.length ? ` (${pairs.join(', ')})` : '';
}

function onHello(hello) {
  app.hello = hello;
  buildWords(hello.labels);
  const words = hello.labels.filter(isWord).length;
  $('model').textContent =
      `${words} words · ${hello.sample_rate / 1000} kHz · ` +
      `threshold ${hello.detection_threshold}` +
      ownThresholds(hello.class_thresholds || {});
  $('mic').disabled = false;
  if (!app.audio) setStatus('ready', 'Ready');
}

function formatClock(date) {
  return date.toLocaleTimeString([], {hour12: false});
}

function onDetection(detection) {
  const entry = app.tiles.get(detection.label);
  if (entry) {
    entry.hits += 1;
    entry.tile.dataset.hits = String(entry.hits);
    entry.count.textContent = `×${entry.hits}`;
    entry.tile.classList.remove('lit');
    void entry.tile.offsetWidth;  // Restarts the animation.
    entry.tile.classList.add('lit');
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => entry.tile.classList.remove('lit'), LIT_MS);
  } else {
    const unknown = $('unknown');
    unknown.hidden = false;
    clearTimeout(app.unknownTimer);
    app.unknownTimer = setTimeout(() => { unknown.hidden = true; }, LIT_MS);
  }
  const item = document.createElement('li');
  item.dataset.label = detection.label;
  const clock = document.createElement('time');
  clock.textContent = formatClock(new Date());
  const word = document.createElement('span');
  word.className = isWord(detection.label) ? 'word' : 'word other';
  word.textContent = displayName(detection.label);
  const score = document.createElement('span');
  score.className = 'score';
  score.textContent = `${Math.round(detection.score * 100)}%`;
  const at = document.createElement('span');
  at.className = 'at muted';
  at.textContent = `${(detection.time_ms / 1000).toFixed(2)} s`;
  at.title = 'start of the clip, in seconds since listening began';
  item.append(clock, word, score, at);
  const log = $('log');
  log.prepend(item);
  while (log.children.length > LOG_SIZE) log.lastElementChild.remove();
  $('log-empty').hidden = true;
}

function setMeter(element, fraction) {
  const value = Math.max(0, Math.min(1, fraction));
  element.style.setProperty('--value', value.toFixed(3));
  element.setAttribute('aria-valuenow', String(Math.round(value * 100)));
}

function onScores(message) {
  const scores = message.scores;
  app.hello.labels.forEach((label, i) => {
    const entry = app.tiles.get(label);
    // Small scores are noise: no sliver of a bar on every tile.
    const value = scores[i] < 0.05 ? 0 : scores[i];
    if (entry) entry.bar.style.setProperty('--value', value.toFixed(3));
  });
  const speaking = message.label && message.label !== '_silence_' &&
      message.score > 0;
  setMeter($('hearing-meter'), speaking ? message.score : 0);
  $('hearing').textContent =
      speaking ? `${displayName(message.label)} ${message.score.toFixed(2)}` :
                 '…';
}

function onMessage(event) {
  if (typeof event.data !== 'string') return;
  const message = JSON.parse(event.data);
  switch (message.type) {
    case 'hello': onHello(message); break;
    case 'detection': onDetection(message); break;
    case 'scores': onScores(message); break;
    case 'error': showMessage(`Server: ${message.message}`); break;
    default: break;
  }
}

/** Opens the WebSocket (once) and resolves after the server's hello. */
function connect() {
  if (app.ws && app.ws.readyState === WebSocket.OPEN && app.hello) {
    return Promise.resolve();
  }
  if (app.connecting) return app.connecting;
  setStatus('connecting', 'Connecting');
  app.connecting = new Promise((resolve, reject) => {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/ws`);
    ws.binaryType = 'arraybuffer';
    app.ws = ws;
    ws.onmessage = (event) => {
      onMessage(event);
      if (app.hello && app.connecting) {
        app.connecting = null;
        resolve();
      }
    };
    ws.onclose = (event) => {
      const why = CLOSE_CODES[event.code] ||
          (event.reason ? `Disconnected: ${event.reason}` : 'Disconnected.');
      const detail = event.reason && CLOSE_CODES[event.code] ?
          ` (${event.reason})` : '';
      const wasListening = Boolean(app.audio);
      app.ws = null;
      app.hello = null;
      stopAudio();
      if (event.code === 4408 && !wasListening) {
        // A page left open without listening: reconnect on the next start.
        setStatus('off', 'Idle');
      } else {
        setStatus(event.code === 1013 ? 'busy' : 'off',
                  event.code === 1013 ? 'Busy' : 'Offline');
        showMessage(`${why}${detail} Press the button to connect again.`);
      }
      $('mic').disabled = false;
      if (app.connecting) {
        app.connecting = null;
        reject(new Error(why));
      }
    };
  });
  return app.connecting;
}

/** A frame from the worklet: update the meter, send it to the server. */
function onFrame(data, rate) {
  if (!app.audio) return;
  // -60..0 dBFS, falling back slowly so that a word's level can be seen.
  const level = 1 + Math.log10(Math.max(data.rms, 1e-3)) / 3;
  app.level = Math.max(level, app.level - LEVEL_FALL);
  setMeter($('level'), app.level);
  const ws = app.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  if (ws.bufferedAmount > rate * 2 * MAX_BACKLOG_MS / 1000) {
    showMessage('The server is falling behind; skipping audio.');
    return;
  }
  ws.send(data.pcm);
}

async function startAudio() {
  if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
    showMessage('The microphone needs a secure page: open it as ' +
                'https://… or on localhost (see docs/app.md).');
    return;
  }
  showMessage('');
  $('mic').disabled = true;
  // Made and resumed within the click: Safari keeps an audio context made
  // later (after an await) suspended.
  const context = new AudioContext();
  context.resume();
  let stream = null;
  try {
    await connect();
    const rate = app.hello.sample_rate;
    try {
      // Raw audio, as in the training clips: no browser clean-up.
      stream = await navigator.mediaDevices.getUserMedia({audio: {
        channelCount: 1, echoCancellation: false, noiseSuppression: false,
        autoGainControl: false}});
    } catch (error) {
      throw new Error(`no microphone (${error.message || error.name})`);
    }
    await context.audioWorklet.addModule('capture-worklet.js');
    const source = context.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(context, 'kws-capture', {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      processorOptions: {
        targetRate: rate, frameSamples: Math.round(rate * FRAME_MS / 1000)},
    });
    node.port.onmessage = ({data}) => onFrame(data, rate);
    if (!app.ws || app.ws.readyState !== WebSocket.OPEN) {
      throw new Error('the connection to the server was lost');
    }
    // Before any audio, so the server reads the frames as int16.
    app.ws.send(JSON.stringify(
        {type: 'start', format: 'int16', sample_rate: rate}));
    // The node writes silence; connecting it keeps the graph running.
    source.connect(node).connect(context.destination);
    await context.resume();
    app.audio = {context, stream, node};
  } catch (error) {
    if (stream) for (const track of stream.getTracks()) track.stop();
    context.close();
    $('mic').disabled = false;
    // A failed connection has said why already.
    if (app.ws) throw error;
    return;
  }
  setStatus('listening', 'Listening');
  $('mic').setAttribute('aria-pressed', 'true');
  $('mic-label').textContent = 'Stop';
  $('mic').disabled = false;
}

function stopAudio() {
  const audio = app.audio;
  app.audio = null;
  $('mic').setAttribute('aria-pressed', 'false');
  $('mic-label').textContent = 'Start listening';
  app.level = 0;
  setMeter($('level'), 0);
  setMeter($('hearing-meter'), 0);
  $('hearing').textContent = '…';
  for (const entry of app.tiles.values()) {
    entry.bar.style.setProperty('--value', '0');
  }
  if (!audio) return;
  audio.node.port.postMessage('stop');
  audio.node.disconnect();
  for (const track of audio.stream.getTracks()) track.stop();
  audio.context.close();
  if (app.ws && app.hello) setStatus('ready', 'Ready');
}

function main() {
  $('mic').addEventListener('click', () => {
    if (app.audio) {
      stopAudio();
    } else {
      startAudio().catch((error) => {
        showMessage(`Could not start: ${error.message || error}`);
        $('mic').disabled = false;
      });
    }
  });
  connect().catch(() => {});
}

main();
