// kvq synth: a synthetic dump with LLM-like structure, for tests and scale checks.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>

#include "commands.h"
#include "kvq/base/error.h"
#include "kvq/dump/synth.h"

namespace kvq::cli {

void registerSynth(CLI::App& root) {
  struct SynthArgs {
    std::string out;
    SynthOptions synth;
    std::string dtype = "float16";
  };
  auto args = std::make_shared<SynthArgs>();
  CLI::App* cmd = root.add_subcommand(
      "synth", "Write a clearly labelled synthetic dump (for tests and scale checks only)");
  cmd->add_option("--out", args->out, "Output dump (HDF5)")->required();
  cmd->add_option("--layers", args->synth.layers, "Number of layers")->check(CLI::Range(1, 4096));
  cmd->add_option("--kv-heads", args->synth.kvHeads, "Key/value heads per layer")->check(CLI::Range(1, 1024));
  cmd->add_option("--head-dim", args->synth.headDim, "Channels per head (even)")->check(CLI::Range(2, 4096));
  cmd->add_option("--tokens", args->synth.tokens, "Tokens")->check(CLI::Range(int64_t{1}, int64_t{1} << 32));
  cmd->add_option("--seed", args->synth.seed, "Random seed");
  cmd->add_option("--dtype", args->dtype, "Storage type")->check(CLI::IsMember(namesOf<DType>()));
  cmd->add_flag("--queries", args->synth.queries, "Also write queries (as many heads as kv heads)");
  cmd->callback([args]() {
    if (args->synth.headDim % 2 != 0) throwBadInput("", "--head-dim", "must be even (rotary pairs)");
    args->synth.dtype = parseName<DType>(args->dtype, "--dtype");
    writeSynthDump(args->out, args->synth);
    std::printf("wrote %s: synthetic, %d layers x %d kv heads x %d channels, %lld tokens, %s\n",
                args->out.c_str(), args->synth.layers, args->synth.kvHeads, args->synth.headDim,
                static_cast<long long>(args->synth.tokens), args->dtype.c_str());
  });
}

}  // namespace kvq::cli
