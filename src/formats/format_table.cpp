// The format table (STYLE.md §1): each format is one row, its traits (REFERENCE.md §1 table) and
// the kernels of its rule (rules.h). Everything else (CLI, parsers, tests) iterates this table.
#include <sstream>

#include "core/error.h"
#include "formats/format_ops.h"
#include "formats/rules.h"

namespace wush {
namespace {

// Code widths of the table's element codecs (two 4-bit codes per byte, low nibble first).
static_assert(E2M1::kBits == 4 && E4M3::kBits == 8, "element code widths");
static_assert(rules::Nvfp4Rule::kScaleCodes == 0x7E + 1, "NVFP4 scale codes: E4M3 0 .. 448");

template <class Rule> FormatOps row(const FormatTraits& t) {
  using K = kernels::Kernels<Rule>;
  FormatOps o;
  o.traits = t;
  o.fake = &K::fake;
  o.quantize = &K::quantize;
  o.dequantize = &K::dequantize;
  o.encode = &K::encode;
  o.group_scales_f32 = &K::template group_scales<float>;
  o.group_scales_f64 = &K::template group_scales<double>;
  o.with_scales_f32 = &K::template with_scales<float>;
  o.with_scales_f64 = &K::template with_scales<double>;
  return o;
}

const std::vector<FormatOps>& table() {
  using namespace rules;
  static const std::vector<FormatOps> t = {
      row<Mxfp4Rule>({Format::MXFP4, "mxfp4", 32, 4, Elem::E2M1, ScaleType::E8M0,
                      "s = 2^floor(log2 amax); q = RNE_E2M1(3x/s); x' = q s/3 (never clips)"}),
      row<Mxfp4OcpRule>({Format::MXFP4_OCP, "mxfp4-ocp", 32, 4, Elem::E2M1, ScaleType::E8M0,
                         "X = 2^(floor(log2 amax)-2); q = RNE_E2M1(x/X) saturated at 6; x' = q X"}),
      row<Nvfp4Rule>({Format::NVFP4, "nvfp4", 16, 4, Elem::E2M1, ScaleType::E4M3,
                      "s = E4M3(g amax/6) (overflow saturates, reported); q = RNE_E2M1(x g/s); "
                      "x' = q s/g"}),
      row<Mxint4Rule>({Format::MXINT4, "mxint4", 32, 4, Elem::INT4, ScaleType::E8M0,
                       "X = 2^(floor(log2 amax)-2); q = clamp(RNE(x/X), -8, 7); x' = q X"}),
      row<Int4Rule>({Format::INT4, "int4", 32, 4, Elem::INT4_MIDRISE, ScaleType::BF16,
                     "s = bf16(2.5139*2/15 rms); q = clamp(floor(x/s), -8, 7); x' = (q+1/2) s"}),
      row<Mxfp8Rule>({Format::MXFP8, "mxfp8", 32, 8, Elem::E4M3, ScaleType::E8M0,
                      "X = 2^(floor(log2 amax)-8); q = E4M3(x/X) saturated at 448; x' = q X"}),
      row<Int8Rule>({Format::INT8, "int8", 0, 8, Elem::INT8, ScaleType::FP32,
                     "per row s = amax/127; q = clamp(RNE(x/s), -127, 127); x' = q s"}),
  };
  return t;
}

const FormatOps& none_row() {
  static const FormatOps o = [] {
    FormatOps r;
    r.traits = {Format::None, "none", 0, 32, Elem::None, ScaleType::None, "no quantization (fp32)"};
    return r;
  }();
  return o;
}

}  // namespace

const FormatOps& format_ops(Format f) {
  if (f == Format::None) return none_row();
  for (const FormatOps& o : table())
    if (o.traits.id == f) return o;
  WUSH_FAIL("format: unknown format id %d", int(f));
}

const std::vector<FormatTraits>& all_formats() {
  static const std::vector<FormatTraits> v = [] {
    std::vector<FormatTraits> r;
    for (const FormatOps& o : table()) r.push_back(o.traits);
    return r;
  }();
  return v;
}

const FormatTraits& traits(Format f) { return format_ops(f).traits; }

Format parse_format(const std::string& name) {
  if (name == none_row().traits.name) return Format::None;
  std::ostringstream valid;
  for (const FormatTraits& t : all_formats()) {
    if (name == t.name) return t.id;
    valid << t.name << ", ";
  }
  valid << none_row().traits.name;
  WUSH_FAIL("unknown format '%s' (valid: %s)", name.c_str(), valid.str().c_str());
}

std::string format_name(Format f) { return traits(f).name; }

}  // namespace wush
