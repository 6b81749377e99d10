// The zero-shot task files of ../shared/data/tasks (data/README.md) and their items as
// lm-evaluation-harness requests (REFERENCE.md §6): choice i of an item is the continuation
// continuations[i] scored after contexts[i]. One table row per task (STYLE.md §1).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace wush {

enum class TaskFormat {
  QueryChoices,  // JSON lines {"query", "choices", "gold"}: continuation " " + choice after the query
  Winogrande,    // {"context_options", "continuation", "gold"}: partial scoring, the shared
                 // " " + continuation after each context option
  Lambada,       // {"context", "continuation"}: greedy exact match of " " + continuation, and its perplexity
  HellaswagTxt,  // 6 lines per item: context, gold index, four endings (lm-eval preprocessing)
};

struct TaskInfo {
  const char* name;      // CLI / JSON name
  const char* file;      // under <data>/tasks/
  TaskFormat format;
  int64_t items;         // items in the file (data/README.md)
};

// arc_easy, arc_challenge, piqa, hellaswag, winogrande, boolq, openbookqa, lambada, copa, siqa.
const std::vector<TaskInfo>& all_tasks();
// By name; wush::Error listing the valid names otherwise.
const TaskInfo& find_task(const std::string& name);
// "all" or a comma-separated list of names -> tasks in the given order, duplicates dropped.
std::vector<const TaskInfo*> parse_task_list(const std::string& list);

struct TaskDoc {
  std::vector<std::string> contexts;       // per choice
  std::vector<std::string> continuations;  // per choice, the target delimiter " " included
  // acc_norm denominators: the bytes of each choice's text without the delimiter (lm-eval's
  // `len(choice)`; WinoGrande: the shared continuation, so acc_norm = acc there).
  std::vector<size_t> norm_bytes;
  int gold = 0;
  // The item as a solved few-shot example: contexts[gold] + continuations[gold].
  std::string example() const { return contexts[size_t(gold)] + continuations[size_t(gold)]; }
};

// Parses a task file's text; `path` names it in errors (with the line number).
std::vector<TaskDoc> parse_task(const TaskInfo& task, const std::string& text, const std::string& path);
// Reads and parses <data_dir>/tasks/<file>.
std::vector<TaskDoc> load_task(const TaskInfo& task, const std::string& data_dir);

// lm-eval's HellaSwag preprocess(): strip, " [title]" -> ". ", drop "[...]" spans, "  " -> " ".
std::string hellaswag_preprocess(const std::string& text);
// lm-eval's HellaSwag query is activity_label + ": " + ctx_a + " " + ctx_b.capitalize(); the file
// holds the uncapitalized line, so the last sentence fragment (ctx_b: the text after the last
// ". ", "! " or "? ") gets its first letter upper-cased when it is a lower-case ASCII letter.
std::string hellaswag_context(const std::string& line);

}  // namespace wush
