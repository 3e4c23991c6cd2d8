/**
 * @fileoverview Audio worklet: microphone -> frames at the model's rate.
 *
 * Mixes the input down to mono, resamples it from the audio context's rate
 * to `targetRate` and posts frames of `frameSamples` int16 samples to the
 * page, with the frame's RMS and peak level (0..1) for the meter. The page
 * sends the frames on to the server.
 */

import {Resampler} from './resampler.js';

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const {targetRate, frameSamples} = options.processorOptions;
    // `sampleRate` is the audio context's rate (a worklet global).
    this.resampler = new Resampler(sampleRate, targetRate);
    this.frame = new Float32Array(frameSamples);
    this.fill = 0;
    this.running = true;
    this.port.onmessage = (event) => {
      if (event.data === 'stop') this.running = false;
    };
  }

  process(inputs) {
    const channels = inputs[0];
    if (!this.running) return false;
    if (!channels || channels.length === 0) return true;
    let mono = channels[0];
    if (channels.length > 1) {
      mono = new Float32Array(channels[0].length);
      for (const channel of channels) {
        for (let i = 0; i < mono.length; i++) mono[i] += channel[i];
      }
      for (let i = 0; i < mono.length; i++) mono[i] /= channels.length;
    }
    const samples = this.resampler.push(mono);
    let pos = 0;
    while (pos < samples.length) {
      const take =
          Math.min(samples.length - pos, this.frame.length - this.fill);
      this.frame.set(samples.subarray(pos, pos + take), this.fill);
      this.fill += take;
      pos += take;
      if (this.fill === this.frame.length) this.post();
    }
    return true;
  }

  post() {
    const pcm = new Int16Array(this.frame.length);
    let squares = 0;
    let peak = 0;
    for (let i = 0; i < this.frame.length; i++) {
      const s = Math.max(-1, Math.min(1, this.frame[i]));
      squares += s * s;
      peak = Math.max(peak, Math.abs(s));
      pcm[i] = Math.max(-32768, Math.min(32767, Math.round(s * 32768)));
    }
    const rms = Math.sqrt(squares / this.frame.length);
    this.port.postMessage({pcm: pcm.buffer, rms, peak}, [pcm.buffer]);
    this.fill = 0;
  }
}

registerProcessor('kws-capture', CaptureProcessor);
