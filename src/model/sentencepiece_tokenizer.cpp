// SentencePiece .model tokenizer. The work is done by libsentencepiece inside the wush_spm module
// (src/model/spm_module), loaded with dlopen(RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND): sentencepiece
// embeds its own protobuf, which would collide with libtorch's libprotobuf.so if it were linked
// into this process directly. BOS is added as SentencePiece models do (llama: BOS = 1).
// AddressSanitizer builds: ASan's dlopen refuses RTLD_DEEPBIND, so the module is loaded with
// dlmopen(LM_ID_NEWLM) instead, into a link namespace of its own (its own libstdc++, libc and
// protobuf: the same isolation). Only C types and caller-owned buffers cross the boundary
// (spm_api.h), so the two heaps never meet; the module is built without instrumentation.
#include <dlfcn.h>
#include <unistd.h>

#include <climits>

#include "core/atomic_file.h"
#include "core/error.h"
#include "model/spm_module/spm_api.h"
#include "model/tokenizer_loaders.h"

namespace wush {
namespace {

std::string executable_dir() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  std::string exe(buf, static_cast<size_t>(n));
  size_t slash = exe.rfind('/');
  return slash == std::string::npos ? "" : exe.substr(0, slash);
}

#if defined(__SANITIZE_ADDRESS__)
#define WUSH_ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WUSH_ASAN_BUILD 1
#endif
#endif

// The module, loaded so that sentencepiece binds to its own protobuf (see the top of the file).
void* open_isolated(const std::string& path) {
#ifdef WUSH_ASAN_BUILD
  return dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL);
#else
  return dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
#endif
}

// The module's entry points, resolved once per process.
struct SpmModule {
  decltype(&wush_spm_load) load;
  decltype(&wush_spm_free) free;
  decltype(&wush_spm_vocab_size) vocab_size;
  decltype(&wush_spm_bos_id) bos_id;
  decltype(&wush_spm_eos_id) eos_id;
  decltype(&wush_spm_unk_id) unk_id;
  decltype(&wush_spm_is_control) is_control;
  decltype(&wush_spm_is_byte) is_byte;
  decltype(&wush_spm_encode) encode;
  decltype(&wush_spm_decode) decode;
  decltype(&wush_spm_id_to_piece) id_to_piece;

  static const SpmModule& get() {
    static const SpmModule m = open();  // thread-safe one-time initialisation
    return m;
  }

 private:
  static SpmModule open() {
    const std::string name = "libwush_spm.so";
    std::vector<std::string> candidates;
    std::string dir = executable_dir();
    if (!dir.empty()) candidates.push_back(dir + "/" + name);
#ifdef WUSH_SPM_MODULE_PATH
    candidates.push_back(WUSH_SPM_MODULE_PATH);
#endif
    std::string tried;
    void* handle = nullptr;
    for (const std::string& c : candidates) {
      if (!path_exists(c)) {
        tried += "\n  " + c + ": not found";
        continue;
      }
      handle = open_isolated(c);
      if (handle) break;
      const char* e = dlerror();
      tried += "\n  " + c + ": " + (e ? e : "dlopen failed");
    }
    WUSH_CHECK(handle, "cannot load the SentencePiece module %s (build the wush_spm target); tried:%s",
               name.c_str(), tried.c_str());
    auto sym = [&](const char* s) {
      void* p = dlsym(handle, s);
      WUSH_CHECK(p, "SentencePiece module %s lacks symbol %s", name.c_str(), s);
      return p;
    };
    auto version = reinterpret_cast<decltype(&wush_spm_api_version)>(sym("wush_spm_api_version"));
    WUSH_CHECK(version() == WUSH_SPM_API_VERSION,
               "SentencePiece module %s has API version %d, expected %d (rebuild wush_spm)",
               name.c_str(), version(), WUSH_SPM_API_VERSION);
    SpmModule m;
#define WUSH_SPM_SYM(field) m.field = reinterpret_cast<decltype(m.field)>(sym("wush_spm_" #field))
    WUSH_SPM_SYM(load);
    WUSH_SPM_SYM(free);
    WUSH_SPM_SYM(vocab_size);
    WUSH_SPM_SYM(bos_id);
    WUSH_SPM_SYM(eos_id);
    WUSH_SPM_SYM(unk_id);
    WUSH_SPM_SYM(is_control);
    WUSH_SPM_SYM(is_byte);
    WUSH_SPM_SYM(encode);
    WUSH_SPM_SYM(decode);
    WUSH_SPM_SYM(id_to_piece);
#undef WUSH_SPM_SYM
    return m;  // the handle stays open for the life of the process
  }
};

// Calls f(out, cap) -> length with a growing buffer (spm_api.h buffer convention).
template <class T, class F>
std::vector<T> call_sized(F f, size_t guess, const char* what, const std::string& path) {
  std::vector<T> buf(std::max<size_t>(guess, 1));
  int64_t n = f(buf.data(), buf.size());
  WUSH_CHECK(n >= 0, "%s: SentencePiece %s failed", path.c_str(), what);
  if (static_cast<size_t>(n) > buf.size()) {
    buf.resize(static_cast<size_t>(n));
    n = f(buf.data(), buf.size());
    WUSH_ASSERT(n >= 0 && static_cast<size_t>(n) == buf.size());
  }
  buf.resize(static_cast<size_t>(n));
  return buf;
}

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& path) : m_(SpmModule::get()), path_(path) {
    std::string bytes = read_file(path);
    char err[512] = {0};
    spm_ = m_.load(bytes.data(), bytes.size(), err, sizeof(err));
    WUSH_CHECK(spm_, "%s: not a valid SentencePiece model: %s", path.c_str(), err);
    vocab_ = m_.vocab_size(spm_);
    WUSH_CHECK(vocab_ > 0, "%s: SentencePiece model has no pieces", path.c_str());
    pieces_.resize(static_cast<size_t>(vocab_));
    for (int32_t id = 0; id < vocab_; ++id) pieces_[static_cast<size_t>(id)] = surface(id);
  }
  ~SentencePieceTokenizer() override { m_.free(spm_); }

  std::vector<int32_t> encode(const std::string& text, bool add_bos) const override {
    std::vector<int32_t> ids = call_sized<int32_t>(
        [&](int32_t* out, size_t cap) { return m_.encode(spm_, text.data(), text.size(), out, cap); },
        text.size() / 2 + 16, "encode", path_);
    if (add_bos && adds_bos()) ids.insert(ids.begin(), bos_id());
    return ids;
  }
  std::string decode(const std::vector<int32_t>& ids) const override {
    for (int32_t id : ids)
      WUSH_CHECK(id >= 0 && id < vocab_, "%s: token id %d out of range [0, %d)", path_.c_str(), id, vocab_);
    std::vector<char> s = call_sized<char>(
        [&](char* out, size_t cap) { return m_.decode(spm_, ids.data(), ids.size(), out, cap); },
        ids.size() * 8 + 16, "decode", path_);
    return std::string(s.begin(), s.end());
  }
  std::string piece(int32_t id) const override {
    WUSH_CHECK(id >= 0 && id < vocab_, "%s: token id %d out of range [0, %d)", path_.c_str(), id, vocab_);
    return pieces_[static_cast<size_t>(id)];
  }
  int32_t vocab_size() const override { return vocab_; }
  int32_t bos_id() const override { return m_.bos_id(spm_); }
  int32_t eos_id() const override { return m_.eos_id(spm_); }
  bool adds_bos() const override { return bos_id() >= 0; }
  std::string kind() const override { return "sentencepiece"; }

 private:
  std::string raw_piece(int32_t id) const {
    std::vector<char> s = call_sized<char>(
        [&](char* out, size_t cap) { return m_.id_to_piece(spm_, id, out, cap); }, 32, "id_to_piece",
        path_);
    return std::string(s.begin(), s.end());
  }
  // The text a token adds mid-sequence: control tokens none, byte tokens <0xXX> their byte,
  // unknown " ⁇ " (as SentencePiece decodes it), others with "▁" (U+2581) read as a space.
  std::string surface(int32_t id) const {
    if (m_.is_control(spm_, id)) return "";
    std::string p = raw_piece(id);
    if (m_.is_byte(spm_, id) && p.size() == 6)
      return std::string(1, static_cast<char>(std::stoi(p.substr(3, 2), nullptr, 16)));
    if (id == m_.unk_id(spm_)) return " \xE2\x81\x87 ";
    std::string out;
    for (size_t i = 0; i < p.size(); ++i) {
      if (p.compare(i, 3, "\xE2\x96\x81") == 0) {
        out += ' ';
        i += 2;
      } else {
        out += p[i];
      }
    }
    return out;
  }

  const SpmModule& m_;
  std::string path_;
  WushSpm* spm_ = nullptr;
  int32_t vocab_ = 0;
  std::vector<std::string> pieces_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path) {
  return std::make_unique<SentencePieceTokenizer>(path);
}

}  // namespace wush
