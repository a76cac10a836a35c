// The attention options of kvq train, eval and attention (--attention,
// --attention-queries, ...) and the attention table printed on stdout.
#pragma once

#include <cstdint>
#include <string>

#include "kvq/study/attention_study.h"

namespace CLI {
class App;
}

namespace kvq::cli {

struct AttentionCliOptions {
  bool enabled = false;
  int64_t queries = 1024;
  int topK = 32;
  int window = 128;
  bool noKiviWindow = false;
  std::string depths;  // "" = the full depth K
};

// --attention (when withFlag: train, eval), --attention-queries, --attention-top-k,
// --attention-window, --attention-depths, --no-kivi-window.
void addAttentionOptions(CLI::App* cmd, AttentionCliOptions& o, bool withFlag);
// Throws BadInput naming the option.
AttentionOptions buildAttentionOptions(const AttentionCliOptions& o, bool enabled);

// Per layer and method: bits, output error, KL, logit error, recall, and how the
// KL and the exact attention's mass split over sink / recent / rest.
void printAttentionTable(const AttentionResult& result);

}  // namespace kvq::cli
