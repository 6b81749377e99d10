// Helpers shared by the LATMiX tests (latmix_test.cpp, latmix_quantize_test.cpp).
#pragma once
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <string>

#include "latmix/init.h"
#include "model/tokenizer.h"
#include "pipeline/calibration.h"
#include "runtime_test_util.h"

namespace wush::latmix_test {

using namespace wush::latmix;

inline at::Generator gen_of(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

// max |a - b| / max |b|, in fp64.
inline double rel_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>() / b.to(at::kDouble).abs().max().item<double>();
}

// The initialization (noise 0.05) with random diagonal scales and shifts: a strongly
// non-orthogonal A and v != 0 for T1 and every T2.
inline LatmixTransforms perturbed_init(const Model& m, Param p, uint64_t seed) {
  InitOptions o;
  o.param = p;
  o.init = p == Param::LU ? Init::Hadamard : Init::Orthogonal;
  o.noise = 0.05;
  o.seed = seed;
  LatmixTransforms t = init_latmix(m, o);
  at::Generator g = gen_of(seed + 100);
  auto perturb = [&](AffineTransform& a) {
    a.log_s += 0.3 * at::randn({a.n()}, g, at::kDouble);
    a.shift = 0.5 * at::randn({a.n()}, g, at::kDouble);
  };
  perturb(t.t1);
  for (AffineTransform& a : t.t2) perturb(a);
  return t;
}

inline const std::string kStories = "models/stories260K.bin";

// The first nsamples x seqlen TinyStories calibration windows of stories260K.
inline at::Tensor stories_calib(int64_t nsamples, int64_t seqlen) {
  Model m = load_model(wush::testing::data_path(kStories));
  auto tok = load_tokenizer(m.tokenizer_path);
  CalibrationOptions o;
  o.nsamples = nsamples;
  o.seqlen = seqlen;
  return load_calibration(*tok, wush::testing::data_path("text/tinystories_calib.txt"), o).tokens;
}

}  // namespace wush::latmix_test
