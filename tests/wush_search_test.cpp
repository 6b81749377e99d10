// wush-search (src/transforms/wush_search_transform.h, the accuracy issue's item 5): per-block
// eigenvector signs chosen greedily to lower the block's W4A4 RTN loss; never worse than the
// canonical choice on its objective, and still a WUSH transform (only Had's column signs change).
#include <gtest/gtest.h>

#include "core/error.h"
#include "pipeline/quantize_linear.h"
#include "quant/calib_stats.h"
#include "transform_test_util.h"
#include "transforms/block_linalg.h"
#include "transforms/hadamard.h"
#include "transforms/wush_block.h"
#include "transforms/wush_local_transform.h"
#include "transforms/wush_search_transform.h"

using namespace wush;
using namespace wush::testing;

namespace {

struct Blocks {
  at::Tensor Gw, Gx, W;
};

Blocks blocks_of(const SyntheticLayer& L, int64_t G) {
  const at::Tensor Wt = column_blocks_t(L.W, G);  // W_j^T [nb, G, R], as wush-local builds it
  return {at::matmul(Wt, Wt.transpose(-2, -1)) / double(L.W.size(0)), diagonal_blocks(L.H, G), L.W};
}

}  // namespace

TEST(WushSearch, NeverWorseThanCanonicalOnItsObjective) {
  auto L = synthetic_layer(2048, 128, 96, 7);
  int64_t improved = 0;
  for (Format f : {Format::MXFP4, Format::NVFP4, Format::MXINT4, Format::INT4}) {
    const int64_t G = f == Format::NVFP4 ? 16 : 32;
    Blocks b = blocks_of(L, G);
    WushSearchOptions o;
    o.samples = 64;
    WushSearchResult r = wush_search_blocks(b.Gw, b.Gx, b.W, f, true, true, o);
    ASSERT_EQ(r.loss_final.size(0), 128 / G);
    EXPECT_TRUE((r.loss_final <= r.loss_initial).all().item<bool>()) << format_name(f);
    EXPECT_TRUE((r.loss_initial > 0).all().item<bool>());
    improved += (r.loss_final < r.loss_initial).sum().item<int64_t>();
    // Zero passes = the canonical wush-local blocks, bit for bit.
    o.passes = 0;
    WushSearchResult c = wush_search_blocks(b.Gw, b.Gx, b.W, f, true, true, o);
    WushBlockOptions bo;
    EXPECT_TRUE(at::equal(c.T, wush_local_block(b.Gw, b.Gx, bo))) << format_name(f);
    EXPECT_TRUE(at::equal(c.loss_initial, r.loss_initial));
    EXPECT_EQ(c.flips, 0);
  }
  // 2 or 4 blocks per format, 32 flips each: the search finds something on a heavy-tailed layer.
  EXPECT_GT(improved, 0);
}

// The searched T_j differs from the canonical one only by the signs of Had's columns:
// Had^T T_search T_canon^{-1} Had = diag(+-1) (without bf16 rounding), so the §2 property
// (T H T^T = Had D Had^T) is kept.
TEST(WushSearch, OnlyEigenvectorSignsChange) {
  auto L = synthetic_layer(1024, 64, 48, 3);
  Blocks b = blocks_of(L, 32);
  WushSearchResult r = wush_search_blocks(b.Gw, b.Gx, b.W, Format::MXFP4, true, false);
  at::Tensor canon = wush_local_block(b.Gw, b.Gx, WushBlockOptions{true, true, false});
  at::Tensor had = hadamard_matrix(32).to(at::kDouble);
  for (int64_t j = 0; j < 2; ++j) {
    at::Tensor S = at::matmul(at::matmul(had.t(), r.T[j]), at::matmul(at::inverse(canon[j]), had));
    at::Tensor d = S.diagonal();
    EXPECT_LT((S - at::diag(d)).abs().max().item<double>(), 1e-9);
    EXPECT_LT((d.abs() - 1).abs().max().item<double>(), 1e-9);
  }
  EXPECT_EQ(r.flips, (at::matmul(at::matmul(had.t(), r.T), at::matmul(at::inverse(canon), had))
                          .diagonal(0, 1, 2) < 0).sum().item<int64_t>());
}

// Through a recipe: the transform gets the recipe's format; the objective recomputed here on the
// same Gaussian samples (seed) from the layer's stored T is the search's final one.
TEST(WushSearch, RecipeRunsAndFitsTheRecipesFormat) {
  auto L = synthetic_layer(1024, 64, 48, 11);
  const at::Tensor Wf = L.W.to(at::kFloat);
  for (Format f : {Format::MXFP4, Format::NVFP4}) {
    Recipe r = parse_recipe(std::string("wush-search:") + format_name(f) + ":rtn");
    LayerStats st("l");
    st.add(L.X.to(at::kFloat));
    LinearQuantInput in;
    in.name = "l";
    in.W = Wf;
    in.stats = &st;
    QuantLinear q = quantize_linear(in, r);
    const int64_t G = f == Format::NVFP4 ? 16 : 32;
    ASSERT_EQ(q.T.size(1), G);
    SyntheticLayer L2{L.X, st.H().to(at::kDouble), Wf.to(at::kDouble)};
    Blocks b = blocks_of(L2, G);
    WushSearchResult s = wush_search_blocks(b.Gw, b.Gx, b.W, f, true, true);
    EXPECT_TRUE(at::equal(q.T, s.T.to(at::kFloat))) << format_name(f);
  }
  EXPECT_THROW(wush_search_blocks(at::eye(32).unsqueeze(0).to(at::kDouble), at::eye(32).unsqueeze(0).to(at::kDouble),
                                  at::ones({40, 32}, at::kDouble), Format::None, true, true),
               Error);
}
