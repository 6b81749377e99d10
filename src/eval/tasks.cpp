// Task files (data/README.md "tasks/") -> TaskDoc lists, lm-evaluation-harness formatting.
#include "eval/tasks.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "core/atomic_file.h"
#include "core/error.h"

namespace wush {

namespace {

const std::vector<TaskInfo> kTasks = {
    {"arc_easy", "arc_easy.jsonl", TaskFormat::QueryChoices, 2376},
    {"arc_challenge", "arc_challenge.jsonl", TaskFormat::QueryChoices, 1172},
    {"piqa", "piqa.jsonl", TaskFormat::QueryChoices, 1838},
    {"hellaswag", "hellaswag_val.txt", TaskFormat::HellaswagTxt, 10042},
    {"winogrande", "winogrande.jsonl", TaskFormat::Winogrande, 1267},
    {"boolq", "boolq.jsonl", TaskFormat::QueryChoices, 3270},
    {"openbookqa", "openbook_qa.jsonl", TaskFormat::QueryChoices, 500},
    {"lambada", "lambada_openai.jsonl", TaskFormat::Lambada, 5153},
    {"copa", "copa.jsonl", TaskFormat::QueryChoices, 100},
    {"siqa", "siqa.jsonl", TaskFormat::QueryChoices, 1954},
};

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    pos = end + 1;
  }
  return lines;
}

bool is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

std::string strip(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// Python's str.replace: every non-overlapping occurrence, left to right, in one pass.
std::string replace_all(const std::string& s, const std::string& from, const std::string& to) {
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) out += s.substr(pos, hit - pos) + to;
  return out + s.substr(pos);
}

// Python's re.sub(r"\[.*?\]", "", s): each "[" up to the nearest "]" is removed (no newlines here).
std::string drop_brackets(const std::string& s) {
  std::string out;
  size_t pos = 0;
  for (;;) {
    size_t open = s.find('[', pos);
    size_t close = open == std::string::npos ? open : s.find(']', open + 1);
    if (close == std::string::npos) return out + s.substr(pos);
    out += s.substr(pos, open - pos);
    pos = close + 1;
  }
}

int gold_index(const nlohmann::json& j, size_t choices, const std::string& where) {
  WUSH_CHECK(j.contains("gold") && j["gold"].is_number_integer(), "%s: missing integer \"gold\"", where.c_str());
  const int64_t g = j["gold"].get<int64_t>();
  WUSH_CHECK(g >= 0 && g < int64_t(choices), "%s: gold %lld outside 0..%zu", where.c_str(), (long long)g, choices - 1);
  return int(g);
}

std::string str_field(const nlohmann::json& j, const char* key, const std::string& where) {
  WUSH_CHECK(j.contains(key) && j[key].is_string(), "%s: missing string \"%s\"", where.c_str(), key);
  return j[key].get<std::string>();
}

std::vector<std::string> str_list(const nlohmann::json& j, const char* key, const std::string& where) {
  WUSH_CHECK(j.contains(key) && j[key].is_array() && j[key].size() >= 1, "%s: missing list \"%s\"", where.c_str(), key);
  std::vector<std::string> out;
  for (const auto& v : j[key]) {
    WUSH_CHECK(v.is_string(), "%s: \"%s\" holds a non-string", where.c_str(), key);
    out.push_back(v.get<std::string>());
  }
  return out;
}

TaskDoc json_doc(TaskFormat f, const nlohmann::json& j, const std::string& where) {
  WUSH_CHECK(j.is_object(), "%s: not a JSON object", where.c_str());
  TaskDoc d;
  if (f == TaskFormat::QueryChoices) {
    const std::string q = str_field(j, "query", where);
    for (const std::string& c : str_list(j, "choices", where)) {
      d.contexts.push_back(q);
      d.continuations.push_back(" " + c);
      d.norm_bytes.push_back(c.size());
    }
    d.gold = gold_index(j, d.contexts.size(), where);
  } else if (f == TaskFormat::Winogrande) {
    const std::string cont = str_field(j, "continuation", where);
    for (const std::string& c : str_list(j, "context_options", where)) {
      d.contexts.push_back(c);
      d.continuations.push_back(" " + cont);
      d.norm_bytes.push_back(cont.size());
    }
    d.gold = gold_index(j, d.contexts.size(), where);
  } else {  // Lambada
    const std::string cont = str_field(j, "continuation", where);
    d.contexts = {str_field(j, "context", where)};
    d.continuations = {" " + cont};
    d.norm_bytes = {cont.size()};
  }
  return d;
}

std::vector<TaskDoc> parse_hellaswag(const std::string& text, const std::string& path) {
  std::vector<std::string> lines = split_lines(text);
  WUSH_CHECK(lines.size() % 6 == 0, "%s: %zu lines, not a multiple of 6 (context, gold, four endings)", path.c_str(),
             lines.size());
  std::vector<TaskDoc> docs;
  for (size_t i = 0; i < lines.size(); i += 6) {
    const std::string& g = lines[i + 1];
    WUSH_CHECK(g.size() == 1 && g[0] >= '0' && g[0] <= '3', "%s:%zu: gold index '%s' is not 0..3", path.c_str(), i + 2,
               g.c_str());
    TaskDoc d;
    const std::string ctx = hellaswag_context(lines[i]);
    for (size_t e = 0; e < 4; ++e) {
      const std::string ending = hellaswag_preprocess(lines[i + 2 + e]);
      d.contexts.push_back(ctx);
      d.continuations.push_back(" " + ending);
      d.norm_bytes.push_back(ending.size());
    }
    d.gold = g[0] - '0';
    docs.push_back(std::move(d));
  }
  return docs;
}

}  // namespace

const std::vector<TaskInfo>& all_tasks() { return kTasks; }

const TaskInfo& find_task(const std::string& name) {
  std::string valid;
  for (const TaskInfo& t : kTasks) {
    if (name == t.name) return t;
    valid += (valid.empty() ? "" : ", ") + std::string(t.name);
  }
  WUSH_FAIL("--tasks: unknown task '%s' (valid: all, %s)", name.c_str(), valid.c_str());
}

std::vector<const TaskInfo*> parse_task_list(const std::string& list) {
  std::vector<const TaskInfo*> out;
  if (strip(list) == "all") {
    for (const TaskInfo& t : kTasks) out.push_back(&t);
    return out;
  }
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t end = list.find(',', pos);
    if (end == std::string::npos) end = list.size();
    const std::string name = strip(list.substr(pos, end - pos));
    pos = end + 1;
    WUSH_CHECK(!name.empty(), "--tasks '%s': empty task name", list.c_str());
    const TaskInfo* t = &find_task(name);
    if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
  }
  return out;
}

std::string hellaswag_preprocess(const std::string& text) {
  std::string s = replace_all(strip(text), " [title]", ". ");
  return replace_all(drop_brackets(s), "  ", " ");
}

std::string hellaswag_context(const std::string& line) {
  std::string s = line;
  size_t frag = 0;
  for (const char* end : {". ", "! ", "? "}) {
    size_t p = s.rfind(end);
    if (p != std::string::npos) frag = std::max(frag, p + 2);
  }
  if (frag > 0 && frag < s.size() && s[frag] >= 'a' && s[frag] <= 'z') s[frag] = char(s[frag] - 'a' + 'A');
  return hellaswag_preprocess(s);
}

std::vector<TaskDoc> parse_task(const TaskInfo& task, const std::string& text, const std::string& path) {
  if (task.format == TaskFormat::HellaswagTxt) return parse_hellaswag(text, path);
  std::vector<TaskDoc> docs;
  std::vector<std::string> lines = split_lines(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (strip(lines[i]).empty()) continue;
    const std::string where = path + ":" + std::to_string(i + 1);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(lines[i]);
    } catch (const nlohmann::json::exception& e) {
      WUSH_FAIL("%s: not JSON (%s)", where.c_str(), e.what());
    }
    docs.push_back(json_doc(task.format, j, where));
  }
  WUSH_CHECK(!docs.empty(), "%s: no task items", path.c_str());
  return docs;
}

std::vector<TaskDoc> load_task(const TaskInfo& task, const std::string& data_dir) {
  const std::string path = data_dir + "/tasks/" + task.file;
  WUSH_CHECK(path_exists(path), "task %s: no file %s (--data-dir names the folder holding tasks/)", task.name,
             path.c_str());
  return parse_task(task, read_file(path), path);
}

}  // namespace wush
