// What the commands that run the model (ppl, allocate) share: --memory-budget, and the model of
// --model loaded within it and checked against the codebooks that will run in its cache.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "kvq/base/task.h"
#include "kvq/io/codebook_file.h"
#include "kvq/model/decoder_model.h"

namespace CLI {
class App;
}

namespace kvq::cli {

// --memory-budget GiB: the largest float32 model accepted.
void addMemoryBudgetOption(CLI::App* cmd, double& memoryBudgetGiB);

// memoryBudgetGiB in bytes; BadInput naming --memory-budget unless it is in (0, 2^20] GiB.
uint64_t memoryBudgetBytes(double memoryBudgetGiB);

// The model at path, refused above memoryBudget bytes of float32 weights; with codebooks
// (read from codebookPath), BadInput unless they were trained for the model's head shape.
std::unique_ptr<DecoderModel> loadModelFor(const std::string& path, uint64_t memoryBudget,
                                           const CodebookFile* codebooks, const std::string& codebookPath,
                                           const TaskControl* control);

}  // namespace kvq::cli
