// The DATA/BDAT decoder (smtp/data_decoder.h), bytes/s of wire input. The argument is the message
// size in octets (before the terminating "." CR LF). Issue 5 target: >= 4 GB/s per core on clean
// text.
//   BM_DataDecoderClean/N        76-char lines (base64-like) + CR LF, decoder reused (warm body)
//   BM_DataDecoderCleanTakeBody/N  same, but the body is taken each time as smtp::Session does,
//                                so every message regrows its buffer from nothing
//   BM_DataDecoderChunked16K/N   clean text fed in 16 KiB reads, as the network delivers it
//   BM_DataDecoderDotHeavy/N     every line starts with a stuffed ".." (unstuffed to ".")
//   BM_DataDecoderShortLines/N   8-char lines: per-line overhead dominates
//   BM_DataDecoderBdat/N         kChunked mode (BDAT), one chunk
//   BM_Memcpy/N                  the ceiling: copying the same bytes once
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <string>
#include <string_view>

#include "benchmark/benchmark.h"

#include "smtp/data_decoder.h"

namespace ringmx::smtp {
namespace {

constexpr uint64_t kLimit = uint64_t{1} << 30;

// Wire bytes of a message of about `size` octets made of lines of `line_len` characters (the last
// one shorter) each followed by CR LF, every line prefixed by `prefix`, then "." CR LF when
// `terminate`.
std::string MakeInput(size_t size, size_t line_len, std::string_view prefix, bool terminate) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve(size + 8);
  size_t k = 0;
  while (out.size() < size) {
    out.append(prefix);
    const size_t room = size - std::min(size, out.size() + 2);
    const size_t n = std::min(line_len, std::max<size_t>(room, 1));
    for (size_t i = 0; i < n; ++i) out.push_back(kAlphabet[k++ % 64]);
    out.append("\r\n");
  }
  if (terminate) out.append(".\r\n");
  return out;
}

void Run(benchmark::State& state, const std::string& input, DataDecoder::Mode mode, bool take_body,
         size_t chunk) {
  DataDecoder decoder;
  for (auto _ : state) {
    decoder.Begin(mode, kLimit);
    std::string_view rest = input;
    while (!rest.empty() && !decoder.done()) {
      const size_t n = decoder.Consume(rest.substr(0, chunk));
      rest.remove_prefix(n);
    }
    if (mode == DataDecoder::Mode::kChunked) decoder.Finish();
    if (take_body) {
      core::BodyBlocks body = decoder.TakeBody();
      benchmark::DoNotOptimize(body.block_count());
    } else {
      benchmark::DoNotOptimize(decoder.body().block_count());
    }
    benchmark::ClobberMemory();
  }
  if (decoder.error() != DataDecoder::Error::kNone) state.SkipWithError("decoder refused input");
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(input.size()));
}

void BM_DataDecoderClean(benchmark::State& state) {
  const std::string input = MakeInput(static_cast<size_t>(state.range(0)), 76, "", true);
  Run(state, input, DataDecoder::Mode::kDotStuffed, false, input.size());
}
BENCHMARK(BM_DataDecoderClean)->Arg(4096)->Arg(65536)->Arg(1 << 20);

void BM_DataDecoderCleanTakeBody(benchmark::State& state) {
  const std::string input = MakeInput(static_cast<size_t>(state.range(0)), 76, "", true);
  Run(state, input, DataDecoder::Mode::kDotStuffed, true, input.size());
}
BENCHMARK(BM_DataDecoderCleanTakeBody)->Arg(4096)->Arg(65536)->Arg(1 << 20);

void BM_DataDecoderChunked16K(benchmark::State& state) {
  const std::string input = MakeInput(static_cast<size_t>(state.range(0)), 76, "", true);
  Run(state, input, DataDecoder::Mode::kDotStuffed, false, 16384);
}
BENCHMARK(BM_DataDecoderChunked16K)->Arg(65536)->Arg(1 << 20);

void BM_DataDecoderDotHeavy(benchmark::State& state) {
  const std::string input = MakeInput(static_cast<size_t>(state.range(0)), 74, "..", true);
  Run(state, input, DataDecoder::Mode::kDotStuffed, false, input.size());
}
BENCHMARK(BM_DataDecoderDotHeavy)->Arg(4096)->Arg(65536)->Arg(1 << 20);

void BM_DataDecoderShortLines(benchmark::State& state) {
  const std::string input = MakeInput(static_cast<size_t>(state.range(0)), 8, "", true);
  Run(state, input, DataDecoder::Mode::kDotStuffed, false, input.size());
}
BENCHMARK(BM_DataDecoderShortLines)->Arg(4096)->Arg(65536)->Arg(1 << 20);

void BM_DataDecoderBdat(benchmark::State& state) {
  const std::string input = MakeInput(static_cast<size_t>(state.range(0)), 76, "", false);
  Run(state, input, DataDecoder::Mode::kChunked, false, input.size());
}
BENCHMARK(BM_DataDecoderBdat)->Arg(4096)->Arg(65536)->Arg(1 << 20);

void BM_Memcpy(benchmark::State& state) {
  const std::string input = MakeInput(static_cast<size_t>(state.range(0)), 76, "", true);
  std::string out(input.size(), '\0');
  for (auto _ : state) {
    memcpy(out.data(), input.data(), input.size());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(input.size()));
}
BENCHMARK(BM_Memcpy)->Arg(4096)->Arg(65536)->Arg(1 << 20);

}  // namespace
}  // namespace ringmx::smtp
