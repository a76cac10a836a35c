// Attention metrics in reports (docs/metrics.md, "Attention"): JSON nested by
// layer / method / head / key region, and CSV columns added to the study tables.
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "kvq/study/attention_study.h"

namespace kvq {

// {"scale", "rope", "queries_per_layer", "top_k", "recent_window", "quantized_kinds",
//  "layers": [{layer, candidates, query_tokens, seconds, methods: [...]}],
//  "totals": [method summed over layers]}; each method: {method, depth | bits,
//  bits_per_channel, output_relative_error, kl_mean, logit_relative_error,
//  mass_recall, queries, keys, raw sums, regions: {sink, recent, rest}, per_head: [H_q]}.
nlohmann::json attentionToJson(const AttentionResult& result);

// Numbers of one set, as attentionToJson writes them (no per_head).
nlohmann::json attentionSumsToJson(const AttentionSums& sums);

// The CSV columns attention adds (leading comma included):
// ",attn_output_error,attn_kl,attn_logit_error,attn_mass_recall,attn_queries,
//  attn_{sink,recent,rest}_{mass,output_error,kl,logit_error,recall}".
std::string attentionCsvColumns();

// `csv` (a table with the header of studyCsvHeader(), report.h) with the
// attention columns added: empty on its rows, then one row per layer x method x
// head ("all" and each query head) and per method over all layers (layer "all"),
// kind "attention", vectors = query rows. codebookSize: C of the rvq rows.
std::string withAttentionCsv(const std::string& csv, const AttentionResult& result, int codebookSize);

}  // namespace kvq
