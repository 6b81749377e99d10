// wush formats: the format table (REFERENCE.md §1), printed from src/formats/format_table.cpp.
#include <cstdio>

#include "cli.h"
#include "formats/format.h"

namespace {

const char* elem_name(wush::Elem e) {
  switch (e) {
    case wush::Elem::E2M1: return "e2m1";
    case wush::Elem::INT4: return "int4";
    case wush::Elem::INT4_MIDRISE: return "int4-midrise";
    case wush::Elem::E4M3: return "e4m3";
    case wush::Elem::INT8: return "int8";
    case wush::Elem::None: break;
  }
  return "none";
}

const char* scale_name(wush::ScaleType s) {
  switch (s) {
    case wush::ScaleType::E8M0: return "e8m0";
    case wush::ScaleType::E4M3: return "e4m3";
    case wush::ScaleType::BF16: return "bf16";
    case wush::ScaleType::FP32: return "fp32";
    case wush::ScaleType::None: break;
  }
  return "none";
}

}  // namespace

static wush::cli::Register reg(
    "formats", "print the number formats: group size, element, scale and rule",
    [](CLI::App& app) -> wush::cli::Action {
      auto json = std::make_shared<std::string>();
      app.add_option("--json", *json, "also write the table as JSON to FILE ('-' = stdout)");
      return [json] {
        nlohmann::json rows = nlohmann::json::array();
        std::printf("%-10s %4s %4s  %-12s %-5s  %s\n", "name", "G", "bits", "element", "scale", "rule");
        for (const wush::FormatTraits& t : wush::all_formats()) {
          const std::string g = t.group ? std::to_string(t.group) : "row";
          std::printf("%-10s %4s %4d  %-12s %-5s  %s\n", t.name, g.c_str(), t.bits,
                      elem_name(t.elem), scale_name(t.scale), t.rule);
          rows.push_back({{"name", t.name}, {"group", t.group}, {"bits", t.bits},
                          {"element", elem_name(t.elem)}, {"scale", scale_name(t.scale)},
                          {"rule", t.rule}});
        }
        if (!json->empty()) wush::cli::write_json(*json, {{"formats", rows}});
        return 0;
      };
    });
