// The identity positions of Drop-Activation's sparse CPU path in one call, uniforms included
// (trainables/regularizers/_sampling.py says why gaps, and why each is exactly Geometric):
//
//   w_i ~ U[low, high) as torch's uniform_ draws it,  gap_i = trunc(min(log(w_i) * scale, clip)),
//   positions_i = start + gap_1 + ... + gap_i
//
// with `scale` = 1 / log(1 - rate). The Python path is five tensor passes (uniform_, log_,
// mul_, a cast to int64, cumsum_); here the uniforms come from the same generator in the same
// order by the same formula (so the stream is the same, and the generator ends in the same
// state), a block of gaps is computed by a cheap vectorised log (exponent, and a short odd
// series in (m - 1) / (m + 1) for the mantissa; absolute error below 7.5e-10 in log(w)), and
// only where that lands within a guard band of an integer, where truncation could go either
// way, is the gap taken from std::log instead. Outside the band the two give the same integer,
// so the positions are the Python path's except where a last bit differs (torch's log against
// the C library's, or a fused multiply-add in torch's uniform_ against ours) *and* that bit
// moves the product across an integer: a chance below 1e-15 per draw, the same as between
// torch's own CPU builds.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>
#include <ATen/core/MT19937RNGEngine.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>

#include "widest_simd.h"

namespace {

constexpr int64_t kBlock = 256;
constexpr double kLn2 = 0.69314718055994530942;
constexpr double kSqrt2 = 1.41421356237309504880;
// The series below stops after t^9/9; with |t| < 0.172 the rest is below 7.5e-10 in log(w),
// and float64 rounding adds far less. The band is that bound, times the scale, with room.
constexpr double kLogError = 4e-9;

// products[i] = log(w[i]) * scale, by the cheap log; vectorised for the CPU that runs it (the
// exponent is an int32, whose conversion to double every SIMD level has).
REGSTUDY_WIDEST_SIMD void scaled_logs(const double* w, double* products, int64_t n, double scale) {
  for (int64_t i = 0; i < n; ++i) {
    uint64_t bits;
    std::memcpy(&bits, &w[i], sizeof bits);
    int32_t exponent = static_cast<int32_t>((bits >> 52) & 0x7ff) - 1023;
    const uint64_t mantissa_bits = (bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
    double m;
    std::memcpy(&m, &mantissa_bits, sizeof m);  // in [1, 2)
    const bool high = m > kSqrt2;                // fold into [sqrt(1/2), sqrt(2)): |t| < 0.172
    m = high ? 0.5 * m : m;
    exponent += high ? 1 : 0;
    const double t = (m - 1.0) / (m + 1.0);
    const double t2 = t * t;
    const double series =
        1.0 + t2 * (1.0 / 3 + t2 * (1.0 / 5 + t2 * (1.0 / 7 + t2 * (1.0 / 9))));
    products[i] = (static_cast<double>(exponent) * kLn2 + 2.0 * t * series) * scale;
  }
}

// The engine's next n outputs, exactly as n calls of at::mt19937's operator() give them and
// leaving it in the same state: the same twist (Matsumoto & Nishimura's recurrence) and
// tempering, but over its state array in bulk, where each call branches and tempers one word.
// The twist's loops read words 1 and 397 ahead (old) or 227 behind (new), never within a
// vector's reach, so they vectorise as they are; so does the tempering.
REGSTUDY_WIDEST_SIMD void twist(uint32_t* state) {
  constexpr int n = at::MERSENNE_STATE_N, m = at::MERSENNE_STATE_M;
  auto mixed = [](uint32_t u, uint32_t v) {
    const uint32_t y = (u & at::UMASK) | (v & at::LMASK);
    return (y >> 1) ^ ((v & 1u) ? at::MATRIX_A : 0u);
  };
  for (int i = 0; i < n - m; ++i) state[i] = state[i + m] ^ mixed(state[i], state[i + 1]);
  for (int i = n - m; i < n - 1; ++i) state[i] = state[i + m - n] ^ mixed(state[i], state[i + 1]);
  state[n - 1] = state[m - 1] ^ mixed(state[n - 1], state[0]);
}

REGSTUDY_WIDEST_SIMD void temper(const uint32_t* state, uint32_t* out, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    uint32_t y = state[i];
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= (y >> 18);
    out[i] = y;
  }
}

void next_words(at::mt19937_data_pod& engine, uint32_t* out, int64_t count) {
  while (count > 0) {
    if (engine.left_ == 1) {  // the call that would take left_ to 0 twists first
      twist(engine.state_.data());
      engine.left_ = at::MERSENNE_STATE_N + 1;
      engine.next_ = 0;
    }
    const int64_t take = std::min<int64_t>(count, engine.left_ - 1);
    temper(engine.state_.data() + engine.next_, out, take);
    engine.next_ += static_cast<uint32_t>(take);
    engine.left_ -= static_cast<int>(take);
    out += take;
    count -= take;
  }
}

int64_t geometric_positions(const std::optional<at::Generator>& generator, at::Tensor& positions,
                            double low, double high, double scale, double clip, int64_t start) {
  TORCH_CHECK(positions.device().is_cpu() && positions.scalar_type() == at::kLong &&
                  positions.dim() == 1 && positions.is_contiguous(),
              "positions must be a contiguous 1-d int64 CPU tensor");
  TORCH_CHECK(0.0 < low && low < high && high <= 1.0, "need 0 < low < high <= 1");
  TORCH_CHECK(scale < 0.0 && std::isfinite(scale), "scale must be 1 / log(1 - rate) < 0");
  auto* engine = at::get_generator_or_default<at::CPUGeneratorImpl>(
      generator, at::detail::getDefaultCPUGenerator());
  int64_t* out = positions.mutable_data_ptr<int64_t>();
  const int64_t n = positions.numel();
  const double band = kLogError * -scale;
  constexpr uint64_t kMantissa = (uint64_t{1} << 53) - 1;
  const double width = high - low;
  double w[kBlock];
  double products[kBlock];
  uint32_t words[2 * kBlock];
  int64_t last = start;
  std::lock_guard<std::mutex> lock(engine->mutex_);
  // The generator's own engine state, copied out and back: drawn in bulk here, where
  // CPUGeneratorImpl::random64 is a library call per draw.
  at::mt19937_data_pod state = engine->engine().data();
  for (int64_t begin = 0; begin < n; begin += kBlock) {
    const int64_t count = std::min(kBlock, n - begin);
    next_words(state, words, 2 * count);
    for (int64_t i = 0; i < count; ++i) {
      // random64() and uniform_real_distribution<double>, as torch's uniform_ computes them
      const uint64_t bits = (static_cast<uint64_t>(words[2 * i]) << 32) | words[2 * i + 1];
      const double value = static_cast<double>(bits & kMantissa) * 0x1p-53 * width + low;
      w[i] = value == high ? low : value;  // as uniform_: a value rounded up to `high` is `low`
    }
    scaled_logs(w, products, count, scale);
    for (int64_t i = 0; i < count; ++i) {
      // Clipped first, so every cast below is of a number far inside int64's range; a product
      // is at least 1, so truncation is the floor, and two that differ mean an integer between.
      const double product = std::min(products[i], clip);
      int64_t gap = static_cast<int64_t>(product);
      if (static_cast<int64_t>(product - band) != static_cast<int64_t>(product + band)) {
        gap = static_cast<int64_t>(std::min(std::log(w[i]) * scale, clip));
      }
      last += gap;
      out[begin + i] = last;
    }
  }
  at::mt19937 drawn;
  drawn.set_data(state);
  engine->set_engine(drawn);
  return last;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(regstudy, m) {
  m.def(
      "geometric_positions(Generator? generator, Tensor(a!) positions, float low, float high, "
      "float scale, float clip, int start) -> int");
}

TORCH_LIBRARY_IMPL(regstudy, CPU, m) {
  m.impl("geometric_positions", &geometric_positions);
}
