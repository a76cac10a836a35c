// kvq encode DUMP --codebooks FILE --out CODES.h5: the compressed cache of every
// token (codes [T, H, G, K] and fp16 scales [T, H] per layer and kind).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>

#include "commands.h"
#include "engine_options.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/io/codebook_file.h"
#include "kvq/io/codes_file.h"
#include "open_options.h"
#include "output_paths.h"
#include "progress_bar.h"

namespace kvq::cli {

void registerEncode(CLI::App& root) {
  struct EncodeArgs {
    EngineOptions engine;
    OpenArgs open;
    std::string codebooks, out;
  };
  auto args = std::make_shared<EncodeArgs>();
  CLI::App* cmd = root.add_subcommand("encode", "Encode every token of a dump with stored codebooks");
  addDumpArgument(cmd, args->engine);
  cmd->add_option("--codebooks", args->codebooks, "Codebook file written by kvq train")->required();
  cmd->add_option("--out", args->out, "Codes file to write (HDF5)")->required();
  addComputeOptions(cmd, args->engine);
  cmd->add_option("--chunk-tokens", args->engine.chunkTokens, "Tokens per block (bounds memory)")
      ->capture_default_str();
  addOpenOptions(cmd, args->open, true);
  cmd->callback([args]() {
    EngineOptions& o = args->engine;
    o.dump = resolveDump(o.dump, "encode");
    checkOutputPath("--out", args->out);  // fail now, not after encoding
    const CodebookFile file = openCodebooks(args->codebooks, args->open);
    ProgressBar bar;
    const auto reader = openDumpForWork(o.dump, args->open, bar.control());
    bar.finish();
    auto backend = makeEngineBackend(o);
    const EncodeSummary s =
        encodeDumpToFile(*reader, file, args->codebooks, args->out, *backend, bar.control(), o.chunkTokens);
    bar.finish();
    std::printf("wrote %s: %d layer x kind sets, %lld tokens, %.1f MiB of codes and scales\n",
                args->out.c_str(), s.sets, static_cast<long long>(s.tokens),
                static_cast<double>(s.codeBytes) / (1 << 20));
  });
}

}  // namespace kvq::cli
