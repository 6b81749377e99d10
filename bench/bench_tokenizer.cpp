// Tokenizer encode speed on text/gutenberg_eval.txt (The Picture of Dorian Gray, ~450 KB):
// Llama-3 byte-level BPE (tokenizer.json), gutenberg-llama-16M as tokenizer.json (one BPE word
// per text: no pre-tokenizer) and as SentencePiece .model. Reports tokens/s and bytes/s.
//   ./build/bench_tokenizer
#include <benchmark/benchmark.h>

#include "core/atomic_file.h"
#include "core/runtime.h"
#include "model/tokenizer.h"

namespace {

const std::string& eval_text() {
  static const std::string text = wush::read_file(wush::default_data_dir() + "/text/gutenberg_eval.txt");
  return text;
}

void run_encode(benchmark::State& state, const std::string& rel_path) {
  auto tok = wush::load_tokenizer(wush::default_data_dir() + "/" + rel_path);
  const std::string& text = eval_text();
  size_t tokens = 0;
  for (auto _ : state) {
    auto ids = tok->encode(text, true);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.counters["tokens"] = static_cast<double>(tokens);
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(tokens) * state.iterations(), benchmark::Counter::kIsRate);
  state.SetBytesProcessed(static_cast<int64_t>(text.size()) * state.iterations());
}

void BM_EncodeLlama3Json(benchmark::State& s) { run_encode(s, "tokenizers/llama3/tokenizer.json"); }
void BM_EncodeGutenbergJson(benchmark::State& s) { run_encode(s, "models/gutenberg-llama-16M/tokenizer.json"); }
void BM_EncodeGutenbergSpm(benchmark::State& s) { run_encode(s, "models/gutenberg-llama-16M/tokenizer.model"); }

BENCHMARK(BM_EncodeLlama3Json)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_EncodeGutenbergJson)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_EncodeGutenbergSpm)->Unit(benchmark::kMillisecond)->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
