// `wush bench kernels`: the W4A4 layer's CUDA kernels (src/cuda/kernel_bench.h) at the linear
// shapes of real models, against BF16 cuBLAS, with the copy bandwidth and GEMM peaks of the same
// run. The shapes come from the models' config.json files (../shared/data/configs): layer 0's
// seven projections, merged where they have the same (N, K). Prints markdown; --json writes every
// number. Needs a build with the CUDA library (WUSH_CUDA=ON) and a GPU; `--shapes-only` lists
// the shapes without either.
#include "bench_kernels.h"

#include <cstdio>
#include <map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/runtime.h"
#include "model/config.h"
#include "model/weight_layout.h"
#ifdef WUSH_HAVE_CUDA_KERNELS
#include "cuda/kernel_bench.h"
#endif

namespace wush::cli {
namespace {

struct Shape {
  std::string label;
  int64_t N, K;
};

// "model.layers.0.self_attn.q_proj.weight" -> "q"; projections of one (N, K) joined: "q/o".
std::vector<Shape> model_shapes(const std::string& name) {
  const std::string path = resolve_data_path("configs/" + name + ".config.json");
  WUSH_CHECK(path_exists(path), "--models %s: no configs/%s.config.json in the data directory (%s)", name.c_str(),
             name.c_str(), default_data_dir().c_str());
  ModelConfig c = parse_config(nlohmann::json::parse(read_file(path)), path);
  std::vector<Shape> out;
  const std::string prefix = "model.layers.0.";
  for (const WeightSpec& w : expected_weights(c)) {
    if (w.name.rfind(prefix, 0) != 0 || w.shape.size() != 2 || w.is_bias) continue;
    std::string proj = w.name.substr(prefix.size());
    proj = proj.substr(proj.find('.') + 1);  // "q_proj.weight"
    proj = proj.substr(0, proj.find('_'));   // "q"
    bool merged = false;
    for (Shape& s : out)
      if (s.N == w.shape[0] && s.K == w.shape[1]) {
        s.label += "/" + proj;
        merged = true;
      }
    if (!merged) out.push_back({proj, w.shape[0], w.shape[1]});
  }
  for (Shape& s : out) s.label = name + " " + s.label;
  return out;
}

struct Args {
  std::vector<std::string> models = {"Llama-3.1-8B", "Qwen3-8B", "Qwen3-14B", "Llama-3.1-70B"};
  std::vector<int64_t> Ms = {1, 16, 128, 1024, 4096, 8192};
  int reps = 7;
  int64_t quant_mk = 8192;
  std::string json;
  bool shapes_only = false;
};

#ifdef WUSH_HAVE_CUDA_KERNELS
std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

void print_markdown(const cuda::KernelBenchResult& r) {
  std::printf("\nDevice: %s, %d SMs, %d MHz. D2D copy %.0f GB/s (read + written); GEMM 8192^3: BF16 %.0f TFLOP/s, "
              "FP8 %.0f TFLOP/s.\n\n",
              r.device.c_str(), r.sm_count, r.sm_clock_mhz, r.copy_gbs, r.bf16_tflops, r.fp8_tflops);
  if (!r.quant.empty()) {
    std::printf("| quantizer (M = K = %s) | time (us) | bytes (MB) | GB/s | %% of copy |\n|---|---|---|---|---|\n", "8192");
    double had = 0, wush = 0;
    for (const auto& q : r.quant) {
      const double gbs = q.bytes / q.us / 1e3;
      std::printf("| %s | %.1f | %.0f | %.0f | %.0f%% |\n", q.name.c_str(), q.us, q.bytes / 1e6, gbs, 100 * gbs / r.copy_gbs);
      if (q.name == "mxfp4 hadamard -> fp8 operand") had = q.us;
      if (q.name == "mxfp4 wush -> fp8 operand") wush = q.us;
    }
    if (had > 0 && wush > 0) std::printf("\nWUSH per-block vs shared Hadamard (mxfp4 -> fp8 operand): %+.1f%%\n", 100 * (wush / had - 1));
  }
  std::printf("\n| layer | N x K | M | bf16 (us) | q identity | q hadamard | q wush | vec128 GEMM | e2e (us) | e2e vs bf16 "
              "| rowwise GEMM | q wush row | e2e row (us) | e2e row vs bf16 |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& x : r.rows) {
    auto opt = [](double v, const char* f) { return v > 0 ? fmt(f, v) : std::string("n/a"); };
    std::printf("| %s | %lld x %lld | %lld | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.2fx | %s | %s | %s | %s |\n",
                x.label.c_str(), (long long)x.N, (long long)x.K, (long long)x.M, x.bf16, x.q_identity, x.q_hadamard,
                x.q_wush, x.gemm_vec128, x.e2e, x.bf16 / x.e2e, opt(x.gemm_rowwise, "%.1f").c_str(),
                opt(x.q_wush_row, "%.1f").c_str(), opt(x.e2e_row, "%.1f").c_str(),
                opt(x.e2e_row > 0 ? x.bf16 / x.e2e_row : 0, "%.2fx").c_str());
  }
}

nlohmann::json to_json(const cuda::KernelBenchResult& r, const Args& a) {
  nlohmann::json j = {{"device", r.device},       {"sm_count", r.sm_count},     {"sm_clock_mhz", r.sm_clock_mhz},
                      {"copy_gbs", r.copy_gbs},   {"bf16_tflops", r.bf16_tflops}, {"fp8_tflops", r.fp8_tflops},
                      {"reps", a.reps},           {"quant_mk", a.quant_mk},     {"quantizer", nlohmann::json::array()},
                      {"rows", nlohmann::json::array()}};
  for (const auto& q : r.quant) j["quantizer"].push_back({{"case", q.name}, {"us", q.us}, {"bytes", q.bytes}});
  for (const auto& x : r.rows)
    j["rows"].push_back({{"layer", x.label},           {"M", x.M},
                         {"N", x.N},                   {"K", x.K},
                         {"bf16_us", x.bf16},          {"quant_identity_us", x.q_identity},
                         {"quant_hadamard_us", x.q_hadamard}, {"quant_wush_us", x.q_wush},
                         {"gemm_vec128_us", x.gemm_vec128}, {"e2e_us", x.e2e},
                         {"gemm_rowwise_us", x.gemm_rowwise}, {"quant_wush_row_us", x.q_wush_row},
                         {"e2e_row_us", x.e2e_row}});
  return j;
}
#endif

}  // namespace

Action bench_kernels_setup(CLI::App& sub) {
  auto a = std::make_shared<Args>();
  sub.add_option("--models", a->models, "model configs (configs/NAME.config.json of the data directory)")->capture_default_str();
  sub.add_option("--m", a->Ms, "token counts M")->capture_default_str()->check(CLI::PositiveNumber);
  sub.add_option("--reps", a->reps, "timed batches per measurement (median)")->capture_default_str()->check(CLI::PositiveNumber);
  sub.add_option("--quant-mk", a->quant_mk, "M = K of the quantizer-only table (0: skip it)")->capture_default_str();
  sub.add_option("--json", a->json, "write every number as JSON to this file ('-': stdout)");
  sub.add_flag("--shapes-only", a->shapes_only, "list the shapes and stop (no GPU needed)");
  return [a]() -> int {
    std::vector<Shape> shapes;
    for (const std::string& m : a->models)
      for (const Shape& s : model_shapes(m)) shapes.push_back(s);
    if (a->shapes_only) {
      std::printf("| layer | N | K |\n|---|---|---|\n");
      for (const Shape& s : shapes) std::printf("| %s | %lld | %lld |\n", s.label.c_str(), (long long)s.N, (long long)s.K);
      return 0;
    }
#ifdef WUSH_HAVE_CUDA_KERNELS
    // Shapes that several models share are timed once and reported under each label.
    cuda::KernelBenchOptions o;
    o.Ms = a->Ms;
    o.reps = a->reps;
    o.quant_mk = a->quant_mk;
    std::map<std::pair<int64_t, int64_t>, std::string> first;
    for (const Shape& s : shapes)
      if (first.emplace(std::make_pair(s.N, s.K), s.label).second) o.shapes.push_back({s.label, s.N, s.K});
    cuda::KernelBenchResult r;
    cudaError_t e = cuda::run_kernel_bench(o, &r, [](const std::string& l) { std::fprintf(stderr, "%s\n", l.c_str()); });
    WUSH_CHECK(e == cudaSuccess, "wush bench kernels: %s", cuda::last_error_message());
    std::vector<cuda::KernelBenchRow> rows;
    for (const Shape& s : shapes)
      for (cuda::KernelBenchRow x : r.rows)
        if (x.label == first[{s.N, s.K}]) {
          x.label = s.label;
          rows.push_back(x);
        }
    r.rows = rows;
    print_markdown(r);
    if (!a->json.empty()) write_json(a->json, to_json(r, *a));
    return 0;
#else
    WUSH_FAIL("wush bench kernels: this wush was built without the CUDA kernel library (configure with "
              "-DWUSH_CUDA=ON and nvcc; scripts/build does when /usr/local/cuda/bin/nvcc exists)");
#endif
  };
}

}  // namespace wush::cli
