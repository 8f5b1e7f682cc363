import { isGpuOomText, raisedGpuMemoryMb } from './gpu-oom';

describe('GPU out-of-memory detection', () => {
  it.each([
    // PyTorch
    'torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 23.65 GiB total capacity)',
    'RuntimeError: CUDA out of memory. Tried to allocate 20.00 MiB',
    // CUDA runtime and driver, as programs print them
    'saxpy.cu:42: cudaMalloc failed: cudaErrorMemoryAllocation',
    'CUDA error: out of memory',
    'cudaMalloc(&x, n) returned 2 (out of memory) on GPU 0',
    'cuMemAlloc failed: CUDA_ERROR_OUT_OF_MEMORY',
    // libraries
    'RuntimeError: CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`',
    'cuDNN error: CUDNN_STATUS_ALLOC_FAILED',
    // XLA (JAX, TensorFlow)
    'jaxlib.xla_extension.XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory while trying to allocate 17179869184 bytes.',
  ])('recognises %s', (line) => {
    expect(isGpuOomText(`--- stderr (last 3 lines) ---\nloading model\n${line}\n`)).toBe(true);
  });

  it.each([
    'bash: xmalloc: cannot allocate 1048576 bytes (out of memory)', // the host, not the GPU
    'Killed: out of memory', // the kernel's OOM killer
    'java.lang.OutOfMemoryError: Java heap space',
    'error: no such codec',
    'CUDA device 0 ready; memory check passed', // CUDA named, no out-of-memory
  ])('does not take %s for a GPU out-of-memory', (line) => {
    expect(isGpuOomText(line)).toBe(false);
  });

  it('needs "out of memory" and the GPU on the same line', () => {
    expect(isGpuOomText('using CUDA device 0\nmalloc: out of memory')).toBe(false);
    expect(isGpuOomText(undefined)).toBe(false);
    expect(isGpuOomText('')).toBe(false);
  });
});

describe('the raised request of a GPU_OOM retry', () => {
  it('is ×1.5 the reservation, or the measured peak + 1024 MiB when larger', () => {
    expect(raisedGpuMemoryMb({ reservedMb: 20_000 })).toBe(30_000);
    expect(raisedGpuMemoryMb({ reservedMb: 20_001 })).toBe(30_002); // rounded up
    expect(raisedGpuMemoryMb({ reservedMb: 20_000, peakMb: 23_000 })).toBe(30_000);
    expect(raisedGpuMemoryMb({ reservedMb: 20_000, peakMb: 31_000 })).toBe(32_024); // it held more than it reserved
    expect(raisedGpuMemoryMb({ reservedMb: 0, peakMb: 9_000 })).toBe(10_024);
  });

  it('is a whole GPU of the size it died on when nothing was reserved or measured', () => {
    expect(raisedGpuMemoryMb({ reservedMb: 0, gpuTotalMb: 24_576 })).toBe(24_576);
    expect(raisedGpuMemoryMb({ reservedMb: 0, peakMb: 0, gpuTotalMb: 81_559 })).toBe(81_559);
  });

  it('is always above a reservation', () => {
    for (const reservedMb of [1, 2, 3, 100, 4_096, 81_559]) {
      expect(raisedGpuMemoryMb({ reservedMb, gpuTotalMb: 1 })).toBeGreaterThan(reservedMb);
    }
  });
});
