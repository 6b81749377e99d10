#include "model/weight_layout.h"

namespace wush {

std::vector<WeightSpec> expected_weights(const ModelConfig& c) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, D = c.head_dim;
  const int64_t q_out = c.num_heads * D, kv_out = c.num_kv_heads * D;
  std::vector<WeightSpec> w;
  w.push_back({"model.embed_tokens.weight", {V, H}});
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    w.push_back({p + "input_layernorm.weight", {H}, true});
    w.push_back({p + "self_attn.q_proj.weight", {q_out, H}});
    w.push_back({p + "self_attn.k_proj.weight", {kv_out, H}});
    w.push_back({p + "self_attn.v_proj.weight", {kv_out, H}});
    if (c.attention_bias) {  // Qwen2
      w.push_back({p + "self_attn.q_proj.bias", {q_out}, false, true});
      w.push_back({p + "self_attn.k_proj.bias", {kv_out}, false, true});
      w.push_back({p + "self_attn.v_proj.bias", {kv_out}, false, true});
    }
    if (c.qk_norm) {  // Qwen3: RMSNorm over each head's head_dim
      w.push_back({p + "self_attn.q_norm.weight", {D}, true});
      w.push_back({p + "self_attn.k_norm.weight", {D}, true});
    }
    w.push_back({p + "self_attn.o_proj.weight", {H, q_out}});
    w.push_back({p + "post_attention_layernorm.weight", {H}, true});
    w.push_back({p + "mlp.gate_proj.weight", {I, H}});
    w.push_back({p + "mlp.up_proj.weight", {I, H}});
    w.push_back({p + "mlp.down_proj.weight", {H, I}});
  }
  w.push_back({"model.norm.weight", {H}, true});
  if (!c.tie_word_embeddings) w.push_back({"lm_head.weight", {V, H}});
  return w;
}

int64_t parameter_count(const ModelConfig& c) {
  int64_t n = 0;
  for (const WeightSpec& s : expected_weights(c)) {
    int64_t k = 1;
    for (int64_t d : s.shape) k *= d;
    n += k;
  }
  return n;
}

}  // namespace wush
