// The C interface of the wush_spm module (libwush_spm.so): SentencePiece behind a dlopen boundary.
// libsentencepiece embeds its own protobuf, which collides with libtorch's libprotobuf.so when both
// are linked into one process (crash in static initialisation). The module links sentencepiece
// alone and is loaded with RTLD_LOCAL | RTLD_DEEPBIND (src/model/sentencepiece_tokenizer.cpp), so
// sentencepiece binds to its own protobuf. Only C types cross the boundary.
//
// Buffer convention: functions that produce arrays take (out, cap) and return the full length;
// when the result is larger than cap, nothing beyond cap is written and the caller retries with a
// buffer of the returned size. A negative return means failure (see wush_spm_last_error).
#pragma once
#include <stddef.h>
#include <stdint.h>

#define WUSH_SPM_API_VERSION 1

extern "C" {
typedef struct WushSpm WushSpm;

int wush_spm_api_version(void);
// Parses a serialized ModelProto (the bytes of a .model file). nullptr on failure; the reason is in
// err (NUL-terminated, truncated to err_cap).
WushSpm* wush_spm_load(const char* data, size_t len, char* err, size_t err_cap);
void wush_spm_free(WushSpm* spm);

int32_t wush_spm_vocab_size(const WushSpm* spm);
int32_t wush_spm_bos_id(const WushSpm* spm);  // -1 if the model has none
int32_t wush_spm_eos_id(const WushSpm* spm);
int32_t wush_spm_unk_id(const WushSpm* spm);
int32_t wush_spm_is_control(const WushSpm* spm, int32_t id);
int32_t wush_spm_is_byte(const WushSpm* spm, int32_t id);
int32_t wush_spm_piece_to_id(const WushSpm* spm, const char* piece, size_t len);

// Text -> ids (no BOS; the caller adds it). Returns the id count or -1.
int64_t wush_spm_encode(const WushSpm* spm, const char* text, size_t len, int32_t* out, size_t cap);
// Ids -> text as SentencePiece decodes (control tokens dropped, leading dummy space removed).
int64_t wush_spm_decode(const WushSpm* spm, const int32_t* ids, size_t n, char* out, size_t cap);
// The raw piece of one id ("▁the", "<0x0A>", "<s>"); -1 if id is out of range.
int64_t wush_spm_id_to_piece(const WushSpm* spm, int32_t id, char* out, size_t cap);
}
