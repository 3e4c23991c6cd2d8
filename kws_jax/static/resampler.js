/**
 * @fileoverview Streaming sample-rate conversion for the microphone.
 *
 * Windowed-sinc interpolation: each output sample is a weighted sum of the
 * `halfTaps * 2` input samples around its position, the weights a low-pass
 * kernel (cutoff 90% of the lower Nyquist frequency, Hann window) normalised
 * to sum to one. Chunks of any size may be pushed; the output does not
 * depend on how the input was cut. Output sample n lies at input time
 * n * inputRate / outputRate, so there is no delay, only `halfTaps` input
 * samples of latency. Used by the audio worklet; a plain module so that it
 * can be tested on its own.
 */

export class Resampler {
  /**
   * @param {number} inputRate Hz of the samples pushed.
   * @param {number} outputRate Hz of the samples returned.
   * @param {number=} halfTaps input samples on each side of a kernel.
   */
  constructor(inputRate, outputRate, halfTaps = 16) {
    if (!(inputRate > 0) || !(outputRate > 0)) {
      throw new RangeError(`Bad rates ${inputRate} -> ${outputRate}`);
    }
    this.inputRate = inputRate;
    this.outputRate = outputRate;
    this.passthrough = inputRate === outputRate;
    this.step = inputRate / outputRate;  // Input samples per output sample.
    this.half = halfTaps;
    // Cutoff in cycles per input sample, below both Nyquist frequencies.
    this.cutoff = 0.45 * Math.min(1, outputRate / inputRate);
    // Left context: zeros before the first sample.
    this.buffer = new Float32Array(4096);
    this.length = halfTaps;
    this.position = halfTaps;  // Of the next output sample, in `buffer`.
  }

  /** The low-pass kernel at offset t input samples (not normalised). */
  kernel(t) {
    const u = t / this.half;
    if (u <= -1 || u >= 1) return 0;
    const x = 2 * this.cutoff * t;
    const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
    return sinc * 0.5 * (1 + Math.cos(Math.PI * u));
  }

  /**
   * Adds input samples and returns the output samples now complete.
   * @param {!Float32Array} input
   * @return {!Float32Array}
   */
  push(input) {
    if (this.passthrough) return Float32Array.from(input);
    if (this.length + input.length > this.buffer.length) {
      const grown = new Float32Array(2 * (this.length + input.length));
      grown.set(this.buffer.subarray(0, this.length));
      this.buffer = grown;
    }
    this.buffer.set(input, this.length);
    this.length += input.length;

    const half = this.half;
    const buffer = this.buffer;
    const available = Math.max(
        0, Math.floor((this.length - half - 1 - this.position) / this.step) + 1);
    const out = new Float32Array(available);
    for (let n = 0; n < available; n++) {
      const base = Math.floor(this.position);
      const frac = this.position - base;
      let sum = 0;
      let weights = 0;
      for (let k = 1 - half; k <= half; k++) {
        const w = this.kernel(k - frac);
        sum += w * buffer[base + k];
        weights += w;
      }
      out[n] = sum / weights;
      this.position += this.step;
    }
    // Drop the samples no later output needs.
    const drop =
        Math.min(this.length, Math.floor(this.position) - half + 1);
    if (drop > 0) {
      buffer.copyWithin(0, drop, this.length);
      this.length -= drop;
      this.position -= drop;
    }
    return out;
  }
}
