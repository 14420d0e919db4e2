// Times ONNX Runtime's CPU provider on the exported blocks (docs/performance.md).
// usage: node ort_blocks_run.js BLOCKS.onnx [THREADS] [RUNS]   (needs onnxruntime-node in NODE_PATH)
const ort = require('onnxruntime-node');
(async () => {
  const [file, threads = '2', runs = '5'] = process.argv.slice(2);
  const session = await ort.InferenceSession.create(file, {
    intraOpNumThreads: Number(threads), interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential'});
  const tokens = 1201, width = 768;
  const x = new ort.Tensor('float32', Float32Array.from({length: tokens * width}, () => Math.random() - 0.5), [tokens, width]);
  await session.run({x});  // warm-up
  const times = [];
  for (let i = 0; i < Number(runs); ++i) {
    const t = process.hrtime.bigint();
    await session.run({x});
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  times.sort((a, b) => a - b);
  console.log(`onnxruntime-node ${require('onnxruntime-node/package.json').version}, ${threads} threads: ` +
              `min ${times[0].toFixed(0)} ms, median ${times[times.length >> 1].toFixed(0)} ms, max ${times[times.length - 1].toFixed(0)} ms`);
})();
