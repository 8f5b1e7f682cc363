// saxpy: a small CUDA job for Gantry's operator catalog (examples/job-types.yaml, type `cuda-saxpy`).
//
// It runs y = a*x + y on the GPU `iterations` times over `n` floats, checks the result on the host, and speaks the
// worker's line protocol on stdout:
//   GANTRY_PROGRESS <percent> <stage>   progress (the worker turns it into job.progress events)
//   GANTRY_RESULT <json>                the job's result (device name and UUID, timings, the error found)
// It uses exactly the GPU(s) the worker gave it: the worker sets CUDA_VISIBLE_DEVICES to the assigned GPU UUIDs, so
// device 0 here is the first GPU of the job, whatever its index on the host.
//
// Exit codes (the catalog lists 2 as permanent): 0 ok, 2 bad arguments, 3 no usable CUDA device, 4 CUDA error,
// 5 wrong result.
//
// Build: nvcc -O2 -o saxpy saxpy.cu   (see examples/cuda/build.sh for the architectures built by default)
#include <cuda_runtime.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#define CHECK(call)                                                                              \
  do {                                                                                           \
    cudaError_t err_ = (call);                                                                   \
    if (err_ != cudaSuccess) {                                                                   \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorName(err_), __FILE__,     \
                   __LINE__, cudaGetErrorString(err_));                                          \
      std::exit(err_ == cudaErrorNoDevice || err_ == cudaErrorInsufficientDriver ? 3 : 4);       \
    }                                                                                            \
  } while (0)

__global__ void saxpy(int n, float a, const float* __restrict__ x, float* __restrict__ y) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
    y[i] = a * x[i] + y[i];
  }
}

static long parse_arg(int argc, char** argv, const char* name, long fallback, long lo, long hi) {
  for (int i = 1; i + 1 < argc; i++) {
    if (std::strcmp(argv[i], name) == 0) {
      char* end = nullptr;
      long v = std::strtol(argv[i + 1], &end, 10);
      if (!end || *end != '\0' || v < lo || v > hi) {
        std::fprintf(stderr, "saxpy: %s must be an integer from %ld to %ld, got '%s'\n", name, lo, hi, argv[i + 1]);
        std::exit(2);
      }
      return v;
    }
  }
  return fallback;
}

static void format_uuid(const cudaUUID_t& u, char* out) {
  const unsigned char* b = reinterpret_cast<const unsigned char*>(u.bytes);
  std::sprintf(out, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
               b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

int main(int argc, char** argv) {
  const long n = parse_arg(argc, argv, "--n", 1L << 24, 1, 1L << 28);
  const long iterations = parse_arg(argc, argv, "--iterations", 200, 1, 100000);
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // one line at a time, so progress arrives as it happens

  int count = 0;
  CHECK(cudaGetDeviceCount(&count));
  if (count == 0) {
    std::fprintf(stderr, "saxpy: no CUDA device visible (CUDA_VISIBLE_DEVICES=%s)\n", visible ? visible : "<unset>");
    return 3;
  }
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  char uuid[64];
  format_uuid(prop.uuid, uuid);
  std::printf("saxpy on %s (%s), %d device(s) visible, CUDA_VISIBLE_DEVICES=%s\n", prop.name, uuid, count,
              visible ? visible : "<unset>");
  std::printf("GANTRY_PROGRESS 0 allocating\n");

  const size_t bytes = static_cast<size_t>(n) * sizeof(float);
  std::vector<float> x(n, 1.0f), y(n, 2.0f);
  float *dx = nullptr, *dy = nullptr;
  CHECK(cudaMalloc(&dx, bytes));
  CHECK(cudaMalloc(&dy, bytes));
  CHECK(cudaMemcpy(dx, x.data(), bytes, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(dy, y.data(), bytes, cudaMemcpyHostToDevice));

  const float a = 0.5f;
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<long>((n + threads - 1) / threads, 65535L));
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  const long step = iterations >= 20 ? iterations / 20 : 1;
  CHECK(cudaEventRecord(start));
  for (long it = 1; it <= iterations; it++) {
    saxpy<<<blocks, threads>>>(static_cast<int>(n), a, dx, dy);
    CHECK(cudaGetLastError());
    if (it % step == 0 || it == iterations) {
      CHECK(cudaDeviceSynchronize());
      std::printf("GANTRY_PROGRESS %.1f computing\n", 95.0 * static_cast<double>(it) / iterations);
    }
  }
  CHECK(cudaEventRecord(stop));
  CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  CHECK(cudaEventElapsedTime(&ms, start, stop));
  CHECK(cudaMemcpy(y.data(), dy, bytes, cudaMemcpyDeviceToHost));
  CHECK(cudaFree(dx));
  CHECK(cudaFree(dy));

  std::printf("GANTRY_PROGRESS 97 verifying\n");
  const double expected = 2.0 + static_cast<double>(a) * 1.0 * static_cast<double>(iterations);
  double max_error = 0;
  for (long i = 0; i < n; i++) max_error = std::fmax(max_error, std::fabs(y[i] - expected));
  // 2 loads + 1 store of 4 bytes and 2 flops per element per iteration.
  const double seconds = ms / 1000.0;
  const double gflops = seconds > 0 ? 2.0 * n * iterations / seconds / 1e9 : 0;
  const double gbps = seconds > 0 ? 12.0 * n * iterations / seconds / 1e9 : 0;
  std::printf(
      "GANTRY_RESULT {\"device\":\"%s\",\"uuid\":\"%s\",\"visibleDevices\":\"%s\",\"n\":%ld,\"iterations\":%ld,"
      "\"kernelMs\":%.3f,\"gflops\":%.2f,\"bandwidthGBps\":%.2f,\"maxError\":%g}\n",
      prop.name, uuid, visible ? visible : "", n, iterations, ms, gflops, gbps, max_error);
  if (max_error > 1e-3 * expected) {
    std::fprintf(stderr, "saxpy: wrong result, max error %g (expected every y = %g)\n", max_error, expected);
    return 5;
  }
  return 0;
}
