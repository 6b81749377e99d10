#include <gtest/gtest.h>
#include "model/tokenizer.h"
TEST(TokenizerSentencePiece, Smoke) {
  auto t = wush::load_tokenizer(std::string(WUSH_SOURCE_DIR) + "/../shared/data/models/llama2_tokenizer.model");
  auto ids = t->encode("Hello", true);
  for (auto i : ids) printf("%d ", i);
  printf("\n");
}
