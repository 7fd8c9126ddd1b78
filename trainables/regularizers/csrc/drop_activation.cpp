// Drop-Activation's CPU forward in one pass (papers.md, Drop-Activation eq. 3): relu(x), with
// the elements at `positions` (sorted flat indices of the identity elements) copied from x.
//
// Block by block: ReLU over a block that fits in L1, then the block's identity values copied
// from x while both blocks are still there, so the scattered copies cost no extra pass over
// memory (in place, the values are read first and written back after the block's ReLU). Also
// returns the identity positions where x == 0 exactly (+0 or -0), which backward cannot tell
// apart from ReLU zeros in the output (usually none).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "widest_simd.h"

namespace {

constexpr int64_t kBlock = 4096;  // elements: a float32 block of input and output in L1

template <typename T>
void relu_block(const T* x, T* out, int64_t start, int64_t stop) {
  const T zero(0);
  for (int64_t i = start; i < stop; ++i) {
    const T v = x[i];
    out[i] = v < zero ? zero : v;  // -0 and NaN kept, bit for bit what torch.relu gives
  }
}

// The float32 loop at ReLU's own (vectorised) speed.
REGSTUDY_WIDEST_SIMD void relu_block_float(
    const float* x, float* out, int64_t start, int64_t stop) {
  for (int64_t i = start; i < stop; ++i) {
    const float v = x[i];
    out[i] = v < 0.0f ? 0.0f : v;
  }
}

template <>
void relu_block<float>(const float* x, float* out, int64_t start, int64_t stop) {
  relu_block_float(x, out, start, stop);
}

template <typename T>
void forward_range(const T* x, T* out, const int64_t* positions, int64_t count, int64_t begin,
                   int64_t end, std::vector<int64_t>& zeros) {
  const int64_t* next = std::lower_bound(positions, positions + count, begin);
  const int64_t* last = positions + count;
  const T zero(0);
  if (x != out) {  // ReLU the block, then copy its identity values while x's block is in L1
    for (int64_t start = begin; start < end; start += kBlock) {
      const int64_t stop = std::min(start + kBlock, end);
      relu_block(x, out, start, stop);
      for (; next != last && *next < stop; ++next) {
        const T v = x[*next];
        out[*next] = v;
        if (v == zero) zeros.push_back(*next);
      }
    }
    return;
  }
  std::vector<T> kept;  // in place: the block's identity values, read before the ReLU
  for (int64_t start = begin; start < end; start += kBlock) {
    const int64_t stop = std::min(start + kBlock, end);
    const int64_t* first = next;
    kept.clear();
    for (; next != last && *next < stop; ++next) {
      const T v = x[*next];
      kept.push_back(v);
      if (v == zero) zeros.push_back(*next);
    }
    relu_block(x, out, start, stop);
    for (size_t k = 0; k < kept.size(); ++k) out[first[k]] = kept[k];
  }
}

std::tuple<at::Tensor, at::Tensor> drop_activation_forward(const at::Tensor& x,
                                                           const at::Tensor& positions,
                                                           bool inplace) {
  TORCH_CHECK(x.device().is_cpu() && x.is_contiguous(), "x must be a contiguous CPU tensor");
  TORCH_CHECK(positions.scalar_type() == at::kLong && positions.dim() == 1 &&
                  positions.is_contiguous(),
              "positions must be a contiguous 1-d int64 tensor");
  at::Tensor out = inplace ? x : at::empty_like(x);
  const int64_t numel = x.numel();
  const int64_t count = positions.numel();
  const int64_t* pos = positions.const_data_ptr<int64_t>();
  std::vector<std::vector<int64_t>> zeros(std::max<int64_t>(1, at::get_num_threads()));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "drop_activation", [&] {
    const scalar_t* src = x.const_data_ptr<scalar_t>();
    scalar_t* dst = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, (numel + kBlock - 1) / kBlock, 64, [&](int64_t first, int64_t last) {
      auto& found = zeros[at::get_thread_num()];
      forward_range(src, dst, pos, count, first * kBlock, std::min(last * kBlock, numel), found);
    });
  });
  int64_t total = 0;
  for (const auto& z : zeros) total += static_cast<int64_t>(z.size());
  at::Tensor exact_zeros = at::empty({total}, positions.options());
  int64_t* write = exact_zeros.mutable_data_ptr<int64_t>();
  for (const auto& z : zeros) {
    std::memcpy(write, z.data(), z.size() * sizeof(int64_t));
    write += z.size();
  }
  if (total > 0) std::sort(exact_zeros.mutable_data_ptr<int64_t>(), write);
  return {out, exact_zeros};
}

}  // namespace

TORCH_LIBRARY(regstudy, m) {
  m.def("drop_activation_forward(Tensor x, Tensor positions, bool inplace) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(regstudy, CPU, m) {
  m.impl("drop_activation_forward", &drop_activation_forward);
}
