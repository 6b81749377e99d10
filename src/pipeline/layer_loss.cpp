#include "pipeline/layer_loss.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "core/error.h"
#include "core/progress.h"
#include "pipeline/quantize_linear.h"
#include "pipeline/recipe.h"

namespace wush {

namespace {

std::vector<std::string> split_csv(const std::string& csv) {
  std::vector<std::string> out;
  std::stringstream ss(csv);
  for (std::string t; std::getline(ss, t, ',');)
    if (!t.empty()) out.push_back(t);
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// Input size of linear i (kLinearNames order).
int64_t linear_in_features(const ModelConfig& c, int i) {
  if (i == 3) return c.num_heads * c.head_dim;  // o_proj
  if (i == 6) return c.intermediate_size;       // down_proj
  return c.hidden_size;
}

}  // namespace

const LayerStats& BlockInputs::stats_of(int i) const { return stats.at(linear_prefix(layer, source[size_t(i)])); }

BlockInputs record_block_inputs(Transformer& tf, int64_t layer, std::vector<at::Tensor>& h) {
  BlockInputs in;
  in.layer = layer;
  std::array<std::vector<at::Tensor>, 7> chunks;
  std::array<at::Tensor, 7> seen;  // this batch's input of each linear
  std::map<std::string, int> index;
  for (int i = 0; i < 7; ++i) index[linear_prefix(layer, i)] = i;
  ForwardHooks hk;
  hk.on_linear_input = [&](const std::string& name, const at::Tensor& x) {
    auto it = index.find(name);
    WUSH_ASSERT(it != index.end());
    seen[size_t(it->second)] = x;
  };
  for (size_t b = 0; b < h.size(); ++b) {
    for (auto& s : seen) s = at::Tensor();
    at::Tensor out = tf.block(layer, h[b], &hk);
    for (int i = 0; i < 7; ++i) {
      WUSH_CHECK(seen[size_t(i)].defined(), "block %lld: %s was not called by the forward pass", (long long)layer,
                 linear_prefix(layer, i).c_str());
      int src = i;
      for (int j = 0; j < i; ++j)
        if (seen[size_t(j)].data_ptr() == seen[size_t(i)].data_ptr()) {
          src = j;
          break;
        }
      WUSH_CHECK(b == 0 || in.source[size_t(i)] == src, "block %lld: %s shares its input inconsistently across batches",
                 (long long)layer, linear_prefix(layer, i).c_str());
      in.source[size_t(i)] = src;
      if (src == i) chunks[size_t(i)].push_back(seen[size_t(i)].reshape({-1, seen[size_t(i)].size(-1)}).to(at::kFloat));
    }
    h[b] = out;
  }
  for (int i = 0; i < 7; ++i) {
    const int src = in.source[size_t(i)];
    if (src == i) {
      in.X[size_t(i)] = at::cat(chunks[size_t(i)], 0);
      chunks[size_t(i)].clear();
      in.stats.add(linear_prefix(layer, i), in.X[size_t(i)]);
    } else {
      in.X[size_t(i)] = in.X[size_t(src)];
    }
  }
  return in;
}

std::vector<Format> parse_format_list(const std::string& csv, const std::string& what) {
  std::vector<std::string> valid;
  for (const FormatTraits& t : all_formats())
    if (t.group > 0) valid.push_back(t.name);
  std::vector<Format> out;
  for (const std::string& name : split_csv(csv)) {
    WUSH_CHECK(std::find(valid.begin(), valid.end(), name) != valid.end(),
               "%s: unknown or ungrouped format '%s' (valid: %s)", what.c_str(), name.c_str(), join(valid).c_str());
    out.push_back(parse_format(name));
  }
  WUSH_CHECK(!out.empty(), "%s: no format given (valid: %s)", what.c_str(), join(valid).c_str());
  return out;
}

std::vector<std::string> parse_transform_list(const std::string& csv, const std::string& what) {
  const auto& valid = recipe_transforms();
  std::vector<std::string> out = split_csv(csv);
  for (const std::string& t : out)
    WUSH_CHECK(std::find(valid.begin(), valid.end(), t) != valid.end(), "%s: unknown transform '%s' (valid: %s)",
               what.c_str(), t.c_str(), join(valid).c_str());
  WUSH_CHECK(!out.empty(), "%s: no transform given (valid: %s)", what.c_str(), join(valid).c_str());
  return out;
}

double linear_layer_loss(const Model& m, int64_t layer, int i, const BlockInputs& in, const std::string& transform,
                         Format f, int random_seeds) {
  Recipe r = parse_recipe(transform + ":" + format_name(f) + ":rtn");
  const std::string p = linear_prefix(layer, i);
  LinearQuantInput li;
  li.name = p;
  li.W = m.weight(p + ".weight");
  if (m.has(p + ".bias")) li.bias = m.weight(p + ".bias");
  li.stats = &in.stats_of(i);
  const at::Tensor& X = in.X[size_t(i)];
  const int n = transform == "random" ? random_seeds : 1;
  WUSH_CHECK(n >= 1, "random transform: %d seeds (need at least 1)", n);
  double sum = 0;
  for (int k = 0; k < n; ++k) {
    li.seed = uint64_t(k) * 1000003ull + uint64_t(layer * 7 + i);
    sum += layer_loss(quantize_linear(li, r), li.W, li.bias, X);
  }
  return sum / n;
}

LossTable block_loss_table(const Model& m, const BlockInputs& in, const LayerLossOptions& o, Progress* bar) {
  LossTable t;
  for (Format f : o.formats)
    for (const std::string& tr : o.transforms) {
      auto& row = t[format_name(f)][tr];
      for (int i = 0; i < 7; ++i) row[size_t(i)] = linear_layer_loss(m, in.layer, i, in, tr, f, o.random_seeds);
      if (bar) bar->add(1, "block " + std::to_string(in.layer) + " " + format_name(f) + " " + tr);
    }
  return t;
}

LayerLossResult run_layer_loss(const Model& m, const at::Tensor& tokens, const std::vector<int64_t>& blocks,
                               const LayerLossOptions& o) {
  const int64_t L = m.config.num_layers;
  WUSH_CHECK(tokens.defined() && tokens.dim() == 2 && tokens.size(0) > 0,
             "layer loss needs calibration windows (--calib FILE)");
  WUSH_CHECK(!blocks.empty(), "layer loss: no block to measure");
  std::vector<bool> wanted(size_t(L), false);
  for (int64_t b : blocks) {
    WUSH_CHECK(b >= 0 && b < L, "--block %lld: the model has blocks 0..%lld", (long long)b, (long long)(L - 1));
    WUSH_CHECK(!wanted[size_t(b)], "block %lld listed twice", (long long)b);
    wanted[size_t(b)] = true;
  }
  const int64_t last = *std::max_element(blocks.begin(), blocks.end());

  Transformer tf(m, o.device, o.dtype);
  std::vector<at::Tensor> h;  // full-precision hidden states of every window, block by block
  for (int64_t b = 0; b < tokens.size(0); b += o.batch)
    h.push_back(tf.embed(tokens.slice(0, b, std::min(b + o.batch, tokens.size(0))).to(o.device)));

  LayerLossResult res;
  Progress bar("layer-loss", int64_t(blocks.size() * o.formats.size() * o.transforms.size()), "fits");
  std::map<int64_t, LossTable> by_block;
  for (int64_t layer = 0; layer <= last; ++layer) {
    if (!wanted[size_t(layer)]) {
      for (auto& hb : h) hb = tf.block(layer, hb);
      continue;
    }
    BlockInputs in = record_block_inputs(tf, layer, h);  // released at the end of the iteration
    by_block[layer] = block_loss_table(m, in, o, &bar);
  }
  bar.finish();
  for (int64_t b : blocks) {
    res.blocks.push_back(b);
    res.per_block.push_back(by_block.at(b));
  }
  for (const LossTable& t : res.per_block)
    for (const auto& [f, rows] : t)
      for (const auto& [tr, v] : rows) {
        auto& acc = res.mean[f][tr];
        for (size_t i = 0; i < 7; ++i) acc[i] += v[i] / double(res.per_block.size());
      }
  return res;
}

nlohmann::json loss_table_json(const LossTable& t) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [f, rows] : t)
    for (const auto& [tr, v] : rows)
      for (int i = 0; i < 7; ++i) j[f][tr][kLinearShort[i]] = v[size_t(i)];
  return j;
}

std::string format_loss_table(const LossTable& t, const LayerLossOptions& o, const std::string& title) {
  std::string s;
  char buf[256];
  for (Format f : o.formats) {
    const std::string fn = format_name(f);
    auto it = t.find(fn);
    if (it == t.end()) continue;
    std::snprintf(buf, sizeof buf, "%s, %s (G = %d), W4A4 RTN, ||Y - Y_q||^2 / numel\n", title.c_str(), fn.c_str(),
                  traits(f).group);
    s += buf;
    std::snprintf(buf, sizeof buf, "%-11s", "transform");
    s += buf;
    for (int i = 0; i < 7; ++i) {
      std::snprintf(buf, sizeof buf, " %10s", kLinearShort[i]);
      s += buf;
    }
    s += "\n";
    for (const std::string& tr : o.transforms) {
      auto r = it->second.find(tr);
      if (r == it->second.end()) continue;
      std::snprintf(buf, sizeof buf, "%-11s", tr.c_str());
      s += buf;
      for (double v : r->second) {
        std::snprintf(buf, sizeof buf, " %10.3e", v);
        s += buf;
      }
      s += "\n";
    }
    s += "\n";
  }
  return s;
}

std::vector<std::string> padding_notes(const ModelConfig& c, const std::vector<Format>& formats) {
  std::vector<std::string> notes;
  for (Format f : formats) {
    const int64_t G = traits(f).group;
    for (int i = 0; i < 7; ++i) {
      const int64_t C = linear_in_features(c, i);
      if (G <= 0 || C % G == 0) continue;
      char buf[160];
      std::snprintf(buf, sizeof buf, "%s: C = %lld zero-padded to %lld for G = %lld (%s)", kLinearShort[i],
                    (long long)C, (long long)((C + G - 1) / G * G), (long long)G, format_name(f).c_str());
      notes.push_back(buf);
    }
  }
  return notes;
}

}  // namespace wush
