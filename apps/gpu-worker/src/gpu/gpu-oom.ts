/**
 * GPU out-of-memory: telling an attempt that died of it apart, and what its retry asks for (docs/gpu.md, "GPU
 * out-of-memory"). Detection reads the last lines the process wrote (the failure's message and detail): CUDA libraries
 * and frameworks print a recognisable message before they exit, whereas the sampled peak alone cannot tell a program
 * that ran out of GPU memory from one that failed for another reason near its peak.
 */

/** Messages that only a GPU out-of-memory prints (matched anywhere in a line). */
const GPU_OOM_MESSAGES: readonly RegExp[] = [
  /CUDA out of memory/i, // PyTorch: "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate …"
  /\bcudaErrorMemoryAllocation\b/, // CUDA runtime error name
  /\bCUDA_ERROR_OUT_OF_MEMORY\b/, // CUDA driver API
  /\bCUBLAS_STATUS_ALLOC_FAILED\b/,
  /\bCUDNN_STATUS_ALLOC_FAILED\b/,
  /\bCUFFT_ALLOC_FAILED\b/,
  /\bCUSOLVER_STATUS_ALLOC_FAILED\b/,
  /\bCUSPARSE_STATUS_ALLOC_FAILED\b/,
  /RESOURCE_EXHAUSTED: Out of memory/i, // XLA (JAX, TensorFlow) on a GPU
];

/**
 * "out of memory" is what the CUDA runtime's `cudaGetErrorString` says for `cudaErrorMemoryAllocation`, but host
 * allocators say it too: it counts only on a line that also names CUDA or the GPU.
 */
const GENERIC_OOM = /\bout of memory\b/i;
const GPU_WORDS = /\b(cuda\w*|gpu|cublas|cudnn|nccl|cupy|nvrtc)\b/i;

/** Whether text a failed job process wrote says it ran out of GPU memory. */
export function isGpuOomText(text: string | undefined): boolean {
  if (!text) return false;
  for (const line of text.split('\n')) {
    if (GPU_OOM_MESSAGES.some((re) => re.test(line))) return true;
    if (GENERIC_OOM.test(line) && GPU_WORDS.test(line)) return true;
  }
  return false;
}

/** Error codes of a job process's own failure that may hide a GPU out-of-memory (not timeouts, cancels, transfers). */
export const GPU_OOM_CANDIDATES: readonly string[] = ['EXIT_CODE', 'SIGNAL'];

/** How much a `GPU_OOM` retry asks for over the attempt's reservation. */
export const GPU_OOM_GROWTH = 1.5;
/** Head room over the measured peak of the attempt that ran out. */
export const GPU_OOM_PEAK_MARGIN_MB = 1024;

/**
 * The memory per GPU the next attempt of a job that died of `GPU_OOM` reserves:
 *
 *     max( ⌈reservedMb × 1.5⌉, peakMb + 1024 )
 *
 * where `reservedMb` is what the attempt reserved (declared or learned) and `peakMb` the most its processes held on
 * one of its GPUs (when measured). With neither (a job that reserved nothing and whose memory could not be measured,
 * e.g. sharing its GPU), a whole GPU of the size it died on: `gpuTotalMb`. The scheduler caps the result at the pool's
 * largest GPU. Always above `reservedMb` when anything is known.
 */
export function raisedGpuMemoryMb(o: { reservedMb: number; peakMb?: number; gpuTotalMb?: number }): number {
  const grown = Math.ceil(o.reservedMb * GPU_OOM_GROWTH);
  const fromPeak = o.peakMb !== undefined && o.peakMb > 0 ? Math.ceil(o.peakMb) + GPU_OOM_PEAK_MARGIN_MB : 0;
  const raised = Math.max(grown, fromPeak);
  return raised > 0 ? raised : (o.gpuTotalMb ?? 0);
}
