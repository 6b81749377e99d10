// libwush_spm.so: SentencePiece behind the C interface of spm_api.h. Built as a CMake MODULE that
// links only sentencepiece (never libtorch), loaded at run time by sentencepiece_tokenizer.cpp.
#include "spm_api.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

struct WushSpm {
  sentencepiece::SentencePieceProcessor sp;
};

namespace {
void copy_error(const std::string& msg, char* err, size_t cap) {
  if (!err || cap == 0) return;
  size_t n = std::min(msg.size(), cap - 1);
  std::memcpy(err, msg.data(), n);
  err[n] = '\0';
}

int64_t copy_out(const std::string& s, char* out, size_t cap) {
  if (out) std::memcpy(out, s.data(), std::min(s.size(), cap));
  return static_cast<int64_t>(s.size());
}
}  // namespace

extern "C" {
int wush_spm_api_version(void) { return WUSH_SPM_API_VERSION; }

WushSpm* wush_spm_load(const char* data, size_t len, char* err, size_t err_cap) {
  try {
    auto* spm = new WushSpm;
    auto status = spm->sp.LoadFromSerializedProto(absl::string_view(data, len));
    if (!status.ok()) {
      copy_error(status.ToString(), err, err_cap);
      delete spm;
      return nullptr;
    }
    return spm;
  } catch (const std::exception& e) {
    copy_error(e.what(), err, err_cap);
    return nullptr;
  }
}

void wush_spm_free(WushSpm* spm) { delete spm; }

int32_t wush_spm_vocab_size(const WushSpm* spm) { return spm->sp.GetPieceSize(); }
int32_t wush_spm_bos_id(const WushSpm* spm) { return spm->sp.bos_id(); }
int32_t wush_spm_eos_id(const WushSpm* spm) { return spm->sp.eos_id(); }
int32_t wush_spm_unk_id(const WushSpm* spm) { return spm->sp.unk_id(); }
int32_t wush_spm_is_control(const WushSpm* spm, int32_t id) { return spm->sp.IsControl(id); }
int32_t wush_spm_is_byte(const WushSpm* spm, int32_t id) { return spm->sp.IsByte(id); }
int32_t wush_spm_piece_to_id(const WushSpm* spm, const char* piece, size_t len) {
  return spm->sp.PieceToId(absl::string_view(piece, len));
}

int64_t wush_spm_encode(const WushSpm* spm, const char* text, size_t len, int32_t* out, size_t cap) {
  std::vector<int> ids;
  if (!spm->sp.Encode(absl::string_view(text, len), &ids).ok()) return -1;
  for (size_t i = 0; i < ids.size() && i < cap; ++i) out[i] = ids[i];
  return static_cast<int64_t>(ids.size());
}

int64_t wush_spm_decode(const WushSpm* spm, const int32_t* ids, size_t n, char* out, size_t cap) {
  std::vector<int> v(ids, ids + n);
  std::string text;
  if (!spm->sp.Decode(v, &text).ok()) return -1;
  return copy_out(text, out, cap);
}

int64_t wush_spm_id_to_piece(const WushSpm* spm, int32_t id, char* out, size_t cap) {
  if (id < 0 || id >= spm->sp.GetPieceSize()) return -1;
  return copy_out(spm->sp.IdToPiece(id), out, cap);
}
}  // extern "C"
