// `wush bench kernels` without a GPU: its shapes come from the models' config.json files (layer 0's
// projections, equal shapes merged), and a machine without CUDA gets a one-line error.
#include <gtest/gtest.h>

#include <algorithm>
#ifdef WUSH_HAVE_CUDA_KERNELS
#include <cuda_runtime_api.h>
#endif

#include "runtime_test_util.h"

namespace {

TEST(BenchKernelsCli, ShapesFromTheConfigs) {
  std::string out, err;
  ASSERT_EQ(wush::testing::run_cli("bench kernels --shapes-only", &out, &err), 0) << err;
  // Llama-3.1-8B: hidden 4096, 32 heads and 8 KV heads of 128, MLP 14336 (Meta's model card);
  // Qwen3-14B: hidden 5120, 40 heads and 8 KV heads of 128, MLP 17408; Llama-3.1-70B: 8192, 28672.
  for (const char* row : {"| Llama-3.1-8B q/o | 4096 | 4096 |", "| Llama-3.1-8B k/v | 1024 | 4096 |",
                          "| Llama-3.1-8B gate/up | 14336 | 4096 |", "| Llama-3.1-8B down | 4096 | 14336 |",
                          "| Qwen3-8B gate/up | 12288 | 4096 |", "| Qwen3-14B q/o | 5120 | 5120 |",
                          "| Qwen3-14B down | 5120 | 17408 |", "| Llama-3.1-70B k/v | 1024 | 8192 |",
                          "| Llama-3.1-70B gate/up | 28672 | 8192 |"})
    EXPECT_NE(out.find(row), std::string::npos) << row << "\n" << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2 + 16) << out;  // header + 4 shapes x 4 models
}

TEST(BenchKernelsCli, UnknownModelAndNoGpuAreOneLineErrors) {
  std::string out, err;
  EXPECT_EQ(wush::testing::run_cli("bench kernels --models Llama-9B --shapes-only", &out, &err), 1);
  EXPECT_NE(err.find("configs/Llama-9B.config.json"), std::string::npos) << err;
#ifdef WUSH_HAVE_CUDA_KERNELS
  int n = 0;
  if (cudaGetDeviceCount(&n) == cudaSuccess && n > 0) GTEST_SKIP() << "a GPU is present";
  const char* why = "no CUDA device";
#else
  const char* why = "built without the CUDA kernel library";
#endif
  EXPECT_EQ(wush::testing::run_cli("bench kernels --models Llama-3.1-8B --m 1", &out, &err), 1);
  EXPECT_NE(err.find(why), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
}

}  // namespace
