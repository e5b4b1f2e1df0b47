// Store Assistant demo page: microphone or WAV file -> websocket (protocol v1) -> answers.
// Plain browser JavaScript, no build step. See docs/protocol.md for the events.
"use strict";

const I18N = {
  en: {
    title: "Store Assistant",
    subtitle: "Ask where a product is, how many are on hand, top sellers or schedules.",
    spoken: "Spoken language", auto: "Automatic", store: "Store", readAloud: "Read answers aloud",
    start: "Start microphone", stopMic: "Stop", upload: "Replay a WAV file", listening: "Live",
    hint: "Press the microphone and ask, e.g. “where can I find Tide Pods?” or “¿dónde están los pañales Huggies?”",
    nbest: "N-best hypotheses", hyp: "Hypothesis", asrScore: "First pass", rescoreScore: "Rescore", score: "Score",
    footer: "Whisper n-best → RescoreBERT → multilingual NER + intent → inventory",
    connecting: "Connecting…", ready: "Listening — speak, then pause", replaying: "Replaying",
    finishing: "Finishing the last utterance…", idle: "Ready", noMic: "No microphone: ",
    closed: "Connection closed", utterance: "Utterance", noAnswer: "No answer (see the error above).",
    product: "Product", aisle: "Aisle", bay: "Bay", onHand: "On hand", ms: "ms",
    find_product: "Find product", check_stock: "Check stock", top_sellers: "Top sellers",
    associate_schedule: "Schedule", out_of_scope: "Out of scope",
  },
  es: {
    title: "Asistente de tienda",
    subtitle: "Pregunta dónde está un producto, cuántos hay, lo más vendido u horarios.",
    spoken: "Idioma hablado", auto: "Automático", store: "Tienda", readAloud: "Leer respuestas en voz alta",
    start: "Activar micrófono", stopMic: "Detener", upload: "Reproducir un archivo WAV", listening: "En vivo",
    hint: "Pulsa el micrófono y pregunta, p. ej. “¿dónde están los pañales Huggies?” o “where can I find Tide Pods?”",
    nbest: "Hipótesis n-best", hyp: "Hipótesis", asrScore: "Primera pasada", rescoreScore: "Reevaluación", score: "Puntaje",
    footer: "Whisper n-best → RescoreBERT → NER + intención multilingüe → inventario",
    connecting: "Conectando…", ready: "Escuchando — habla y haz una pausa", replaying: "Reproduciendo",
    finishing: "Terminando la última frase…", idle: "Listo", noMic: "Sin micrófono: ",
    closed: "Conexión cerrada", utterance: "Frase", noAnswer: "Sin respuesta (ver el error arriba).",
    product: "Producto", aisle: "Pasillo", bay: "Sección", onHand: "Existencia", ms: "ms",
    find_product: "Buscar producto", check_stock: "Existencias", top_sellers: "Más vendidos",
    associate_schedule: "Horario", out_of_scope: "Fuera de alcance",
  },
};

const $ = (sel) => document.querySelector(sel);
let uiLang = localStorage.getItem("uiLang") || (navigator.language || "en").slice(0, 2);
if (!I18N[uiLang]) uiLang = "en";
const t = (key) => (I18N[uiLang] && I18N[uiLang][key]) || I18N.en[key] || key;

function applyI18n() {
  document.documentElement.lang = uiLang;
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  $("#ui-en").classList.toggle("active", uiLang === "en");
  $("#ui-es").classList.toggle("active", uiLang === "es");
  document.title = t("title");
  document.querySelectorAll(".result").forEach(labelCard);
  setMicLabel();
  setStatus(statusKey, statusExtra);
}

let statusKey = "idle";
let statusExtra = "";
function setStatus(key, extra = "", state = null) {
  statusKey = key;
  statusExtra = extra;
  const el = $("#status");
  el.textContent = (key ? t(key) : "") + (extra ? (key ? " " : "") + extra : "");
  if (state) el.dataset.state = state;
}

// ---- websocket session ----------------------------------------------------------------

const token = new URLSearchParams(location.search).get("token");
function wsUrl() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${location.host}/ws${token ? "?token=" + encodeURIComponent(token) : ""}`;
}

class Session {
  constructor(sampleRate) {
    this.sampleRate = sampleRate;
    this.ws = null;
    this.ended = new Promise((resolve) => { this._resolveEnded = resolve; });
  }

  open() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(wsUrl());
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      ws.onopen = () => {
        const start = { type: "start", sample_rate: this.sampleRate, language: $("#language").value, store: $("#store").value };
        if (token) start.token = token;
        ws.send(JSON.stringify(start));
      };
      ws.onmessage = (msg) => {
        const event = JSON.parse(msg.data);
        if (event.type === "ready") resolve(event);
        handleEvent(event);
        if (event.type === "end") this._resolveEnded();
        if (event.type === "error" && event.fatal) reject(new Error(event.message));
      };
      ws.onerror = () => reject(new Error(t("closed")));
      ws.onclose = (e) => {
        this._resolveEnded();
        if (e.code !== 1000 && e.code !== 1005) setStatus("closed", `(${e.code}${e.reason ? " " + e.reason : ""})`, "error");
        reject(new Error(t("closed")));
      };
    });
  }

  send(buffer) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(buffer);
  }

  async stop() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ type: "stop" }));
      await Promise.race([this.ended, new Promise((r) => setTimeout(r, 60000))]);
      this.ws.close(1000);
    }
  }
}

// ---- microphone (AudioWorklet) --------------------------------------------------------

let mic = null; // {session, context, stream}

function setMicLabel() {
  const btn = $("#mic");
  btn.querySelector("[data-i18n]").textContent = mic ? t("stopMic") : t("start");
  btn.setAttribute("aria-pressed", mic ? "true" : "false");
  btn.classList.toggle("recording", !!mic);
}

async function startMic() {
  setStatus("connecting", "", "busy");
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      // Browser speech processing (echo cancellation, noise suppression) garbles words Whisper
      // reads well unprocessed: take the raw microphone.
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
  } catch (err) {
    setStatus("noMic", err.message || String(err), "error");
    return;
  }
  // A 16 kHz context lets the browser's own high-quality resampler do the work; where it is
  // refused, the worklet downsamples from the device rate.
  let context;
  try {
    context = new AudioContext({ sampleRate: 16000 });
  } catch (err) {
    context = new AudioContext();
  }
  await context.audioWorklet.addModule("mic-worklet.js");
  const source = context.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(context, "pcm-capture", { processorOptions: { outRate: 16000, frameSamples: 512 } });
  const mute = context.createGain();
  mute.gain.value = 0; // the worklet must be pulled by the graph; nothing is played back
  source.connect(node).connect(mute).connect(context.destination);
  const session = new Session(16000);
  mic = { session, context, stream };
  setMicLabel();
  node.port.onmessage = (e) => session.send(e.data);
  try {
    await session.open();
    setStatus("ready", "", "live");
  } catch (err) {
    await stopMic(false);
    setStatus("", err.message, "error");
  }
}

async function stopMic(graceful = true) {
  if (!mic) return;
  const { session, context, stream } = mic;
  mic = null;
  setMicLabel();
  stream.getTracks().forEach((track) => track.stop());
  await context.close();
  if (graceful) {
    setStatus("finishing", "", "busy");
    await session.stop();
    setStatus("idle", "", "idle");
  }
}

// ---- WAV replay -----------------------------------------------------------------------

async function replayFile(file) {
  setStatus("connecting", "", "busy");
  const data = await file.arrayBuffer();
  // decodeAudioData resamples to the context's rate: 16 kHz here.
  const decoded = await new OfflineAudioContext(1, 16000, 16000).decodeAudioData(data);
  const samples = decoded.getChannelData(0);
  const pcm = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const v = Math.max(-1, Math.min(1, samples[i]));
    pcm[i] = v < 0 ? v * 0x8000 : v * 0x7fff;
  }
  const session = new Session(16000);
  try {
    await session.open();
  } catch (err) {
    setStatus("", err.message, "error");
    return;
  }
  setStatus("replaying", file.name, "live");
  // 32 ms frames (one VAD window), each sent once its last sample "was spoken", as the
  // microphone sends them, so partials and finals come when they would live
  const frame = 512;
  const began = performance.now();
  for (let i = 0; i < pcm.length; i += frame) {
    const due = began + (Math.min(i + frame, pcm.length) / 16000) * 1000;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    session.send(pcm.slice(i, i + frame).buffer);
  }
  setStatus("finishing", "", "busy");
  await session.stop();
  setStatus("idle", "", "idle");
}

// ---- rendering ------------------------------------------------------------------------

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function handleEvent(event) {
  if (event.type === "partial") {
    const p = $("#partial");
    p.replaceChildren(el("span", "utt-tag", `#${event.utterance}`), document.createTextNode(" " + event.text));
    p.classList.add("active");
  } else if (event.type === "final") {
    renderFinal(event);
    $("#partial").classList.remove("active");
    $("#partial").replaceChildren(el("span", "hint", "…"));
  } else if (event.type === "error") {
    setStatus("", `⚠ ${event.code}: ${event.message}`, "error");
  }
}

// Text with entity spans wrapped in <mark> (built with DOM nodes: no HTML injection).
function highlighted(text, entities) {
  const frag = document.createDocumentFragment();
  let pos = 0;
  const spans = [...(entities || [])].sort((a, b) => a.start - b.start);
  for (const ent of spans) {
    if (ent.start < pos || ent.end > text.length) continue;
    if (ent.start > pos) frag.appendChild(document.createTextNode(text.slice(pos, ent.start)));
    const mark = el("mark", `ent ent-${ent.label}`);
    mark.appendChild(document.createTextNode(text.slice(ent.start, ent.end)));
    mark.appendChild(el("sup", "ent-label", ent.label));
    mark.title = `${ent.label} ${(ent.score ?? 1).toFixed(2)}`;
    frag.appendChild(mark);
    pos = ent.end;
  }
  if (pos < text.length) frag.appendChild(document.createTextNode(text.slice(pos)));
  return frag;
}

function fmt(x) {
  return x === null || x === undefined ? "—" : Number(x).toFixed(3);
}

function renderAnswer(box, answer) {
  if (!answer) {
    box.appendChild(el("p", "muted", t("noAnswer")));
    return;
  }
  box.appendChild(el("p", "answer-text", answer.text));
  const products = (answer.products || []).slice(0, 5);
  if (!products.length) return;
  const table = el("table", "products");
  const head = el("tr");
  for (const k of ["product", "aisle", "bay", "onHand"]) {
    const th = el("th", null, t(k));
    th.dataset.i18n = k; // re-translated when the interface language changes
    head.appendChild(th);
  }
  table.appendChild(el("thead")).appendChild(head);
  const body = table.appendChild(el("tbody"));
  for (const p of products) {
    const row = el("tr");
    row.appendChild(el("td", "prod", [p.brand, p.name, p.size].filter(Boolean).join(" · ")));
    row.appendChild(el("td", "num big", p.aisle ?? "—"));
    row.appendChild(el("td", "num big", p.bay ?? "—"));
    row.appendChild(el("td", "num", p.on_hand ?? "—"));
    body.appendChild(row);
  }
  box.appendChild(table);
}

// Texts of a result card that depend on the interface language.
function labelCard(card) {
  const utt = card.querySelector(".utt");
  utt.textContent = `${t("utterance")} ${utt.dataset.n}`;
  const chip = card.querySelector(".intent");
  chip.textContent = `${t(chip.dataset.intent)} · ${chip.dataset.score}`;
  card.querySelectorAll(".timing").forEach((n) => { n.textContent = n.textContent.replace(/\S+$/, t("ms")); });
}

function renderFinal(event) {
  const card = $("#result-tpl").content.firstElementChild.cloneNode(true);
  card.querySelectorAll("[data-i18n]").forEach((n) => { n.textContent = t(n.dataset.i18n); });
  const intent = event.intent || { name: "out_of_scope", score: 0 };
  const chip = card.querySelector(".intent");
  chip.dataset.intent = intent.name;
  chip.dataset.score = Number(intent.score).toFixed(2);
  card.querySelector(".utt").dataset.n = event.utterance;
  labelCard(card);
  card.querySelector(".lang").textContent = (event.language || "").toUpperCase();
  card.querySelector(".transcript").appendChild(highlighted(event.text || "", event.entities));
  renderAnswer(card.querySelector(".answer"), event.answer);
  const tbody = card.querySelector(".nbest tbody");
  (event.nbest || []).forEach((h, i) => {
    const row = el("tr", i === 0 ? "best" : "");
    row.appendChild(el("td", "num", String(i + 1)));
    row.appendChild(el("td", null, h.text));
    row.appendChild(el("td", "num", fmt(h.asr_score)));
    row.appendChild(el("td", "num", fmt(h.rescore_score)));
    row.appendChild(el("td", "num", fmt(h.score)));
    tbody.appendChild(row);
  });
  const timings = card.querySelector(".timings");
  for (const [stage, ms] of Object.entries(event.timings_ms || {})) {
    timings.appendChild(el("span", stage === "total" ? "timing total" : "timing", `${stage} ${Math.round(ms)} ${t("ms")}`));
  }
  // Only the newest card shows its n-best table open.
  document.querySelectorAll(".result .nbest-box").forEach((d) => { d.open = false; });
  card.querySelector(".nbest-box").open = true;
  $("#results").prepend(card);
  if ($("#speak").checked && event.answer && "speechSynthesis" in window) {
    const say = new SpeechSynthesisUtterance(event.answer.text);
    say.lang = event.answer.language === "es" ? "es-MX" : "en-US";
    window.speechSynthesis.speak(say);
  }
}

// ---- wiring ---------------------------------------------------------------------------

async function loadStores() {
  try {
    const stores = await (await fetch("stores" + (token ? "?token=" + encodeURIComponent(token) : ""))).json();
    if (!stores.length) return;
    const select = $("#store");
    select.replaceChildren(...stores.map((s) => { const o = el("option", null, s.name); o.value = s.id; return o; }));
  } catch (err) { /* keep the default store */ }
}

$("#ui-en").addEventListener("click", () => { uiLang = "en"; localStorage.setItem("uiLang", uiLang); applyI18n(); });
$("#ui-es").addEventListener("click", () => { uiLang = "es"; localStorage.setItem("uiLang", uiLang); applyI18n(); });
$("#mic").addEventListener("click", () => (mic ? stopMic() : startMic()));
$("#wav").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (file) replayFile(file).catch((err) => setStatus("", err.message, "error"));
  e.target.value = "";
});
applyI18n();
loadStores();
