// Zero-shot evaluation (src/eval/loglikelihood.h, tasks.h, zeroshot.h; REFERENCE.md §6).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "eval/perplexity.h"
#include "eval/zeroshot.h"
#include "eval_test_util.h"
#include "model/llama2c.h"

using namespace wush;
using namespace wush::testing;

namespace {

const std::string kStories = "models/stories260K.bin";

TaskDoc first_doc(const std::string& task) {
  const TaskInfo& t = find_task(task);
  std::string text = read_file(data_path(std::string("tasks/") + t.file));
  const size_t lines = t.format == TaskFormat::HellaswagTxt ? 6 : 1;
  size_t end = 0;
  for (size_t i = 0; i < lines; ++i) end = text.find('\n', end) + 1;
  return parse_task(t, text.substr(0, end), t.file).at(0);
}

// lm-eval's input for a request: (context + continuation) left-truncated to L + 1 tokens, last dropped.
TokenSeq model_input(const LoglikRequest& r, int64_t L) {
  TokenSeq whole = r.context;
  whole.insert(whole.end(), r.continuation.begin(), r.continuation.end());
  if (int64_t(whole.size()) > L + 1) whole.erase(whole.begin(), whole.end() - (L + 1));
  whole.pop_back();
  return whole;
}

}  // namespace

// Linears all zero: every block is the identity (residuals only), so position t's distribution
// depends on token t alone. Embedding = 2 I (vocab = hidden = 16), norm gains 1, tied head:
// rmsnorm(2 e_t) = 2 e_t / sqrt(4/16 + eps), logits = 2 * that: 4/sqrt(1/4 + eps) at t, 0 elsewhere.
TEST(Loglikelihood, HandComputedBigramModel) {
  TinySpec s;
  s.hidden = 16, s.vocab = 16, s.heads = 4, s.kv_heads = 2, s.layers = 2;
  Model m = tiny_model(s);
  for (auto& [name, w] : m.weights) {
    if (name.find("norm") != std::string::npos) w.fill_(1.0);
    else if (name.find("_proj") != std::string::npos) w.zero_();
  }
  m.weights["model.embed_tokens.weight"] = 2 * at::eye(16, at::kFloat);
  const double hit = 4 / std::sqrt(0.25 + m.config.rms_norm_eps), z = std::log(std::exp(hit) + 15);
  const double same = hit - z, other = -z;  // log p(next = t | t), log p(next != t | t)

  Transformer tf(m);
  const std::vector<LoglikRequest> req = {
      {{1, 3}, {3, 5}},   // p(3|3) p(5|3)
      {{1, 3}, {3, 3}},   // p(3|3) p(3|3): greedy
      {{7}, {7}},         // one-token context
      {{1, 3}, {4}},      // p(4|3)
  };
  for (bool share : {false, true})
    for (int64_t bs : {1, 3}) {
      std::vector<LoglikResult> r = score_continuations(tf, nullptr, req, {bs, share});
      ASSERT_EQ(r.size(), 4u);
      EXPECT_NEAR(r[0].logprob, same + other, 1e-5);
      EXPECT_NEAR(r[1].logprob, 2 * same, 1e-5);
      EXPECT_NEAR(r[2].logprob, same, 1e-5);
      EXPECT_NEAR(r[3].logprob, other, 1e-5);
      EXPECT_FALSE(r[0].greedy);
      EXPECT_TRUE(r[1].greedy);
      EXPECT_TRUE(r[2].greedy);
      EXPECT_FALSE(r[3].greedy);
      EXPECT_EQ(r[0].tokens, 2);
    }
}

// A random tiny model: sums (shared-context path, full path, left truncation) against the float64
// equation-level forward.
TEST(Loglikelihood, MatchesFloat64ReferenceOnEveryPath) {
  TinySpec s;  // vocab 32, context 64
  Model m = tiny_model(s, 7);
  Transformer tf(m);
  const int64_t L = m.config.max_position;
  auto ids = [](int64_t n, int seed) {
    TokenSeq t;
    for (int64_t i = 0; i < n; ++i) t.push_back(int32_t((i * 7 + seed * 13 + i * i) % 31 + 1));
    return t;
  };
  std::vector<LoglikRequest> req;
  for (int c = 0; c < 3; ++c) req.push_back({ids(40, 1), ids(1 + 2 * c, c + 2)});  // shared: (3-1)*39 >= 48
  for (int c = 0; c < 2; ++c) req.push_back({ids(62, 5), ids(3 + c, c + 9)});     // 62 + 3 > 65: truncated
  req.push_back({ids(5, 3), ids(4, 4)});
  req.push_back({{1}, ids(64, 6)});     // continuation of the whole context length
  req.push_back({{1, 2}, ids(70, 8)});  // longer than the context: its last 64 tokens
  std::vector<LoglikResult> shared = score_continuations(tf, nullptr, req, {2, true});
  std::vector<LoglikResult> full = score_continuations(tf, nullptr, req, {4, false});
  for (size_t i = 0; i < req.size(); ++i) {
    const TokenSeq in = model_input(req[i], L);
    ASSERT_LE(int64_t(in.size()), L);
    Mat lp = ref_log_softmax(m, in);
    double sum = 0;
    bool greedy = true;
    const TokenSeq& cont = req[i].continuation;
    const size_t m = std::min(cont.size(), in.size()), p0 = in.size() - m, c0 = cont.size() - m;
    for (size_t t = 0; t < m; ++t) {
      const Vec& row = lp[p0 + t];
      sum += row[size_t(cont[c0 + t])];
      greedy = greedy && argmax_of(row) == size_t(cont[c0 + t]);
    }
    EXPECT_EQ(full[i].tokens, int64_t(m));
    EXPECT_EQ(full[i].clipped, cont.size() > size_t(L)) << i;
    EXPECT_NEAR(shared[i].logprob, sum, 2e-5 * (1 + std::abs(sum))) << "request " << i;
    EXPECT_NEAR(full[i].logprob, sum, 2e-5 * (1 + std::abs(sum))) << "request " << i;
    EXPECT_EQ(shared[i].greedy, greedy) << i;
    EXPECT_EQ(full[i].greedy, greedy) << i;
  }
  EXPECT_THROW(score_continuations(tf, nullptr, {{{}, {1}}}, {}), Error);       // empty context
  EXPECT_THROW(score_continuations(tf, nullptr, {{{1}, {}}}, {}), Error);       // empty continuation
  EXPECT_THROW(score_continuations(tf, nullptr, {{{1}, {40}}}, {}), Error);       // outside the vocabulary
}

// acc_norm divides by the choice's bytes, not its tokens: here the two disagree.
TEST(ZeroShot, AccNormDividesByBytesNotTokens) {
  auto tok = load_tokenizer(data_path("models/tok512.bin"));
  const std::string q = "Question: who?";
  const std::vector<std::string> choices = {"the little girl", "qzxvjqzxvj"};  // 15 bytes, 10 bytes
  std::vector<size_t> tokens, bytes;
  for (const std::string& c : choices) {
    tokens.push_back(encode_pair(*tok, q, " " + c).second.size());
    bytes.push_back(c.size());
  }
  ASSERT_LT(tokens[0], tokens[1]);  // fewer tokens for more bytes
  const std::vector<double> lls = {-9.0, -8.0};
  // Per byte the first choice wins (-0.6 vs -0.8); per token the second; raw sum: the second.
  ASSERT_GT(lls[1] / double(tokens[1]), lls[0] / double(tokens[0])) << tokens[0] << " vs " << tokens[1];
  ChoicePick p = pick_choice(lls, bytes);
  EXPECT_EQ(p.acc, 1u);
  EXPECT_EQ(p.acc_norm, 0u);
  // The parser's denominators are UTF-8 bytes: "é" counts 2.
  TaskDoc d = parse_task(find_task("copa"), R"({"query": "q", "choices": ["ééé", "abc"], "gold": 0})", "inline").at(0);
  EXPECT_EQ(d.norm_bytes, (std::vector<size_t>{6, 3}));
  EXPECT_EQ(d.continuations[0], " ééé");
  EXPECT_EQ(pick_choice({-6.6, -3.0}, d.norm_bytes).acc_norm, 1u);  // -1.1/byte vs -1.0/byte
  EXPECT_EQ(pick_choice({-5.4, -3.0}, d.norm_bytes).acc_norm, 0u);  // -0.9/byte vs -1.0/byte
  EXPECT_EQ(argmax_first({1, 3, 3}), 1u);                           // ties: the first, as numpy
}

// COPA's first item, tok512: the context "The man turned on the faucet, therefore" and the
// continuation " water flowed from the spout." as lm-eval splits them: context = encode(context)
// with BOS, continuation = the rest of encode(context + continuation). Expected ids: the pieces of
// tok512.bin looked up by their text (llama2.c's encode adds a dummy-prefix space: " The").
TEST(ZeroShot, FirstCopaItemTokenizedLikeLmEval) {
  auto tok = load_tokenizer(data_path("models/tok512.bin"));
  std::map<std::string, int32_t> id_of;
  for (int32_t i = 0; i < tok->vocab_size(); ++i) id_of[tok->piece(i)] = i;
  auto ids = [&](const std::vector<std::string>& pieces) {
    TokenSeq out;
    for (const std::string& p : pieces) {
      EXPECT_TRUE(id_of.count(p)) << "no piece '" << p << "' in tok512.bin";
      out.push_back(id_of[p]);
    }
    return out;
  };
  TaskDoc d = first_doc("copa");
  ASSERT_EQ(d.contexts[1], "The man turned on the faucet, therefore");
  ASSERT_EQ(d.continuations[1], " water flowed from the spout.");
  auto [ctx, cont] = encode_pair(*tok, d.contexts[1], d.continuations[1]);
  TokenSeq want_ctx = {1};
  for (int32_t i : ids({" The", " m", "an", " t", "u", "r", "n", "ed", " on", " the", " f", "a", "u", "c", "et", ",",
                        " there", "f", "o", "re"}))
    want_ctx.push_back(i);
  EXPECT_EQ(ctx, want_ctx);
  EXPECT_EQ(cont, ids({" wa", "t", "er", " f", "l", "ow", "ed", " f", "r", "om", " the", " s", "p", "out", "."}));
  // No merge across the boundary here: context + continuation is the whole encoding.
  TokenSeq whole = ctx;
  whole.insert(whole.end(), cont.begin(), cont.end());
  EXPECT_EQ(whole, tok->encode(d.contexts[1] + d.continuations[1], true));
}

// lm-eval moves the context's trailing whitespace to the continuation: PIQA's queries end in "\n".
TEST(ZeroShot, TrailingWhitespaceMovesToTheContinuation) {
  auto tok = load_tokenizer(data_path("models/tok512.bin"));
  TaskDoc d = first_doc("piqa");
  ASSERT_EQ(d.contexts[0].back(), '\n');
  const std::string stripped = d.contexts[0].substr(0, d.contexts[0].size() - 1);
  auto [ctx, cont] = encode_pair(*tok, d.contexts[0], d.continuations[0]);
  EXPECT_EQ(ctx, tok->encode(stripped, true));
  TokenSeq whole = tok->encode(stripped + "\n" + d.continuations[0], true);
  ASSERT_GT(whole.size(), ctx.size());
  EXPECT_EQ(cont, TokenSeq(whole.begin() + int64_t(ctx.size()), whole.end()));
  // A trailing space: "a b " + "c" is split as "a b" + " c".
  auto [c2, k2] = encode_pair(*tok, "Tom saw ", "Lily");
  EXPECT_EQ(c2, tok->encode("Tom saw", true));
  TokenSeq w2 = tok->encode("Tom saw Lily", true);
  EXPECT_EQ(k2, TokenSeq(w2.begin() + int64_t(c2.size()), w2.end()));
}

// WinoGrande (partial scoring): each option is a context, the shared continuation is what gets
// scored; its log-likelihood is the continuation's share of the full sequence's token log-probs.
TEST(ZeroShot, WinograndeScoresOnlyTheSharedContinuation) {
  Model m = load_llama2c(data_path(kStories));
  auto tok = load_tokenizer(m.tokenizer_path);
  Transformer tf(m);
  const TaskInfo& t = find_task("winogrande");
  std::vector<TaskDoc> docs = {first_doc("winogrande")};
  ASSERT_EQ(docs[0].contexts.size(), 2u);
  EXPECT_EQ(docs[0].contexts[0], "Sarah was a much better surgeon than Maria so Sarah");
  EXPECT_EQ(docs[0].contexts[1], "Sarah was a much better surgeon than Maria so Maria");
  EXPECT_EQ(docs[0].continuations[0], " always got the easier cases.");
  EXPECT_EQ(docs[0].continuations[1], docs[0].continuations[0]);
  EXPECT_EQ(docs[0].gold, 1);
  TaskRequests tr = task_requests(*tok, t, docs, 1, {});
  ASSERT_EQ(tr.requests.size(), 2u);
  std::vector<LoglikResult> res = score_continuations(tf, nullptr, tr.requests, {});
  for (size_t i = 0; i < 2; ++i) {
    const LoglikRequest& r = tr.requests[i];
    EXPECT_EQ(r.context, tok->encode(docs[0].contexts[i], true));
    EXPECT_EQ(tok->decode(r.continuation), tok->decode(tr.requests[0].continuation));
    TokenSeq whole = r.context;
    whole.insert(whole.end(), r.continuation.begin(), r.continuation.end());
    std::vector<double> lp = token_logprobs(tf, {whole}, 1)[0];  // lp[t] = log p(whole[t+1] | ...)
    double cont = 0;
    for (size_t p = r.context.size() - 1; p < lp.size(); ++p) cont += lp[p];
    EXPECT_NEAR(res[i].logprob, cont, 1e-4);
    EXPECT_EQ(res[i].tokens, int64_t(r.continuation.size()));
  }
  TaskResult tres = evaluate_task(tf, nullptr, *tok, t, docs, {});
  const bool second = res[1].logprob > res[0].logprob;
  EXPECT_EQ(tres.acc, second ? 1.0 : 0.0);
  EXPECT_EQ(tres.acc_norm, tres.acc);  // same continuation bytes for both options
}

TEST(ZeroShot, FewshotIsSeededExcludesTheItemAndFormatsLikeLmEval) {
  for (size_t item : {0u, 5u, 9u}) {
    std::vector<size_t> a = fewshot_indices(10, item, 4, 1234), b = fewshot_indices(10, item, 4, 1234);
    EXPECT_EQ(a, b);
    std::set<size_t> u(a.begin(), a.end());
    EXPECT_EQ(u.size(), 4u);
    EXPECT_EQ(u.count(item), 0u);
    for (size_t i : a) EXPECT_LT(i, 10u);
  }
  EXPECT_NE(fewshot_indices(1000, 3, 5, 1), fewshot_indices(1000, 3, 5, 2));
  std::vector<size_t> all = fewshot_indices(4, 2, 3, 7);  // every other item
  EXPECT_EQ(std::set<size_t>(all.begin(), all.end()), (std::set<size_t>{0, 1, 3}));
  EXPECT_THROW(fewshot_indices(4, 0, 4, 7), Error);

  std::vector<TaskDoc> docs;
  for (int i = 0; i < 3; ++i)
    docs.push_back(TaskDoc{{"Q" + std::to_string(i), "Q" + std::to_string(i)}, {" a", " b"}, {1, 1}, i % 2});
  std::vector<size_t> idx = fewshot_indices(3, 0, 2, 1234);
  EXPECT_EQ(fewshot_context(docs, 0, 2, 1234, "Q0"),
            docs[idx[0]].example() + "\n\n" + docs[idx[1]].example() + "\n\nQ0");
  EXPECT_EQ(docs[1].example(), "Q1 b");
  EXPECT_EQ(fewshot_context(docs, 0, 0, 1234, "Q0"), "Q0");
}

// Sharing the context (KV cache) gives the full-sequence numbers on a real model and task.
TEST(ZeroShot, SharedContextEqualsFullSequencesOnHellaswag) {
  Model m = load_llama2c(data_path(kStories));
  auto tok = load_tokenizer(m.tokenizer_path);
  Transformer tf(m);
  const TaskInfo& t = find_task("hellaswag");
  std::string text = read_file(data_path("tasks/hellaswag_val.txt"));
  size_t end = 0;
  for (int i = 0; i < 6 * 6; ++i) end = text.find('\n', end) + 1;
  std::vector<TaskDoc> docs = parse_task(t, text.substr(0, end), "hellaswag");
  TaskRequests tr = task_requests(*tok, t, docs, docs.size(), {});
  ASSERT_EQ(tr.requests.size(), 24u);
  auto a = score_continuations(tf, nullptr, tr.requests, {8, true});
  auto b = score_continuations(tf, nullptr, tr.requests, {8, false});
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(a[i].logprob, b[i].logprob, 2e-4) << i;
    EXPECT_EQ(a[i].greedy, b[i].greedy) << i;
  }
  ZeroShotOptions o;
  o.limit = 4;
  TaskResult r = evaluate_task(tf, nullptr, *tok, t, docs, o);
  EXPECT_EQ(r.n, 4);
  EXPECT_EQ(r.requests, 16);
}

// ---- task files ------------------------------------------------------------------------------
TEST(Tasks, EveryFileParsesWithTheReadmeCounts) {
  const std::map<std::string, int64_t> readme = {
      {"arc_easy", 2376}, {"arc_challenge", 1172}, {"piqa", 1838},   {"openbookqa", 500}, {"boolq", 3270},
      {"copa", 100},      {"siqa", 1954},          {"winogrande", 1267}, {"lambada", 5153}, {"hellaswag", 10042}};
  ASSERT_EQ(all_tasks().size(), 10u);
  for (const TaskInfo& t : all_tasks()) {
    std::vector<TaskDoc> docs = load_task(t, default_data_dir());
    EXPECT_EQ(int64_t(docs.size()), readme.at(t.name)) << t.name;
    EXPECT_EQ(t.items, readme.at(t.name)) << t.name;
    for (const TaskDoc& d : docs) {
      ASSERT_EQ(d.contexts.size(), d.continuations.size()) << t.name;
      ASSERT_EQ(d.contexts.size(), d.norm_bytes.size()) << t.name;
      ASSERT_TRUE(d.gold >= 0 && size_t(d.gold) < d.contexts.size()) << t.name;
      ASSERT_EQ(d.continuations[0][0], ' ') << t.name;
    }
  }
  TaskDoc arc = first_doc("arc_easy");
  EXPECT_EQ(arc.contexts.size(), 4u);
  EXPECT_EQ(arc.contexts[0], "Question: Which statement best explains why photosynthesis is the foundation of most food webs?");
  EXPECT_EQ(arc.continuations[0], " Sunlight is the source of energy for nearly all ecosystems.");
  EXPECT_EQ(arc.norm_bytes[0], arc.continuations[0].size() - 1);
  EXPECT_EQ(arc.gold, 0);
  TaskDoc lam = first_doc("lambada");
  EXPECT_EQ(lam.continuations, std::vector<std::string>{" signs"});
  EXPECT_EQ(lam.contexts[0].substr(lam.contexts[0].size() - 18), "I don't care about");
  TaskDoc hs = first_doc("hellaswag");
  EXPECT_EQ(hs.contexts[0], "Roof shingle removal: A man is sitting on a roof. He");  // ctx_b capitalized
  EXPECT_EQ(hs.continuations[3], " starts pulling up roofing on a roof.");
  EXPECT_EQ(hs.gold, 3);
}

TEST(Tasks, HellaswagPreprocessingAndBadInputs) {
  // strip, " [title]" -> ". ", drop [...] spans, then "  " -> " " (one pass, as Python's replace).
  EXPECT_EQ(hellaswag_preprocess("  How to x [title] Do it [step] now.  Then   go "), "How to x. Do it now. Then  go");
  EXPECT_EQ(hellaswag_preprocess("See [a | b] here"), "See here");
  EXPECT_EQ(hellaswag_context("Clean and jerk: A lady walks. the lady"), "Clean and jerk: A lady walks. The lady");
  EXPECT_EQ(hellaswag_context("Family Life: How to x. Ask him."), "Family Life: How to x. Ask him.");
  EXPECT_EQ(parse_task_list("copa, piqa,copa").size(), 2u);
  EXPECT_EQ(parse_task_list("all").size(), 10u);
  try {
    parse_task_list("copa,mmlu");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown task 'mmlu' (valid: all, arc_easy"), std::string::npos) << e.what();
  }
  const TaskInfo& copa = find_task("copa");
  auto msg = [&](const TaskInfo& t, const std::string& text) {
    try {
      parse_task(t, text, "f.jsonl");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(msg(copa, "{\"query\": \"q\", \"choices\": [\"a\"], \"gold\": 0}\n{oops"), "f.jsonl:2: not JSON ("
            + msg(copa, "{oops").substr(std::string("f.jsonl:1: not JSON (").size()));
  EXPECT_NE(msg(copa, R"({"query": "q", "choices": ["a", "b"], "gold": 2})").find("f.jsonl:1: gold 2 outside 0..1"),
            std::string::npos);
  EXPECT_NE(msg(copa, R"({"choices": ["a"], "gold": 0})").find("missing string \"query\""), std::string::npos);
  EXPECT_NE(msg(find_task("hellaswag"), "ctx\n7\na\nb\nc\nd\n").find("f.jsonl:2: gold index '7'"), std::string::npos);
  EXPECT_NE(msg(find_task("hellaswag"), "ctx\n1\na\n").find("not a multiple of 6"), std::string::npos);
}
