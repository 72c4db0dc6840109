// AudioWorklet: plays the server's binaural blocks in arrival order.
// Messages in: {seq, poseSeq, code, sourceId, l: Float32Array, r: Float32Array}.
// Messages out: {type: 'playing', ...} when a block starts (the page measures
// pose-to-ear latency with it), {type: 'done'} when a block has been played
// (the page then grants the server one more block), {type: 'underrun'}.
class BlockPlayer extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = [];
    this.cur = null;
    this.pos = 0;
    this.starved = true;  // no underrun reported before the first block
    this.port.onmessage = (e) => { this.queue.push(e.data); };
  }
  process(inputs, outputs) {
    const out = outputs[0];
    const n = out[0].length;
    let i = 0;
    while (i < n) {
      if (!this.cur) {
        this.cur = this.queue.shift() || null;
        this.pos = 0;
        if (!this.cur) {
          for (let c = 0; c < out.length; c++) out[c].fill(0, i);
          if (!this.starved) { this.starved = true; this.port.postMessage({type: 'underrun'}); }
          return true;
        }
        this.starved = false;
        this.port.postMessage({type: 'playing', seq: this.cur.seq, poseSeq: this.cur.poseSeq,
                               code: this.cur.code, sourceId: this.cur.sourceId});
      }
      const m = Math.min(n - i, this.cur.l.length - this.pos);
      out[0].set(this.cur.l.subarray(this.pos, this.pos + m), i);
      if (out.length > 1) out[1].set(this.cur.r.subarray(this.pos, this.pos + m), i);
      i += m;
      this.pos += m;
      if (this.pos >= this.cur.l.length) {
        this.cur = null;
        this.port.postMessage({type: 'done'});
      }
    }
    return true;
  }
}
registerProcessor('block-player', BlockPlayer);
