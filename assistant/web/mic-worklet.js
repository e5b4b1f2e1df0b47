// AudioWorklet: microphone samples (at the context's rate) -> 16 kHz 16-bit PCM frames.
// Runs on the audio thread; posts an ArrayBuffer of Int16 little-endian samples every
// `frameSamples` output samples (the page asks for 512: 32 ms, one VAD window) to the
// main thread, which sends it over the websocket as one binary frame.

class PcmCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.outRate = opts.outRate || 16000;
    this.frameSamples = opts.frameSamples || 1600;
    this.step = sampleRate / this.outRate; // input samples per output sample (>= 1)
    this.pos = 0; // fractional read position into the pending input
    this.pending = new Float32Array(0);
    this.frame = new Int16Array(this.frameSamples);
    this.filled = 0;
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || !input[0]) return true;
    const channel = input[0]; // mono: the first channel
    const buf = new Float32Array(this.pending.length + channel.length);
    buf.set(this.pending);
    buf.set(channel, this.pending.length);
    // Downsample by averaging each output sample's input span (a box low-pass filter that
    // keeps aliasing down), linear at the edges; at equal rates this copies samples.
    let pos = this.pos;
    while (pos + this.step <= buf.length) {
      const start = Math.floor(pos);
      const end = Math.min(buf.length, Math.floor(pos + this.step));
      let sum = 0;
      for (let i = start; i < Math.max(end, start + 1); i++) sum += buf[i];
      const value = sum / Math.max(1, end - start);
      const clipped = Math.max(-1, Math.min(1, value));
      this.frame[this.filled++] = clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff;
      if (this.filled === this.frameSamples) {
        this.port.postMessage(this.frame.buffer, [this.frame.buffer]);
        this.frame = new Int16Array(this.frameSamples);
        this.filled = 0;
      }
      pos += this.step;
    }
    const keep = Math.floor(pos);
    this.pending = buf.slice(keep);
    this.pos = pos - keep;
    return true;
  }
}

registerProcessor("pcm-capture", PcmCapture);
