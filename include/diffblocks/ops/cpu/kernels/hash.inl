// Kernel source, compiled once per instruction set (see simd.inl's header).
//
// A content hash (ops::cpu::content_hash, e.g. to tell whether weights changed): 64 interleaved
// 32-bit FNV-1a lanes folded by a bijective 64-bit mix, so a change confined to one lane (any
// change of a single value, in particular) always changes it.
// Integer arithmetic only: every copy computes the same value.
namespace hash {

/// One step of the bijective fold that combines lane and run hashes (odd multiplier).
inline std::uint64_t fold(std::uint64_t f, std::uint64_t h) { return (f ^ h) * 0x100000001b3ull; }

/// The lane hash of one run of bytes.
inline std::uint64_t lane_hash(const unsigned char* p, std::size_t bytes) {
  constexpr int kLanes = 64;
  constexpr std::uint32_t kPrime32 = 16777619u;
  std::uint32_t h[kLanes];
  for (int l = 0; l < kLanes; ++l) h[l] = 2166136261u + static_cast<std::uint32_t>(l);
  const std::size_t words = bytes / 4, blocks = words / kLanes;
  for (std::size_t b = 0; b < blocks; ++b) {
    std::uint32_t u[kLanes];
    std::memcpy(u, p + b * kLanes * 4, sizeof u);
    for (int l = 0; l < kLanes; ++l) h[l] = (h[l] ^ u[l]) * kPrime32;
  }
  for (std::size_t i = blocks * kLanes * 4; i < bytes; ++i) h[i % kLanes] = (h[i % kLanes] ^ p[i]) * kPrime32;
  std::uint64_t f = 0xcbf29ce484222325ull ^ bytes;
  for (int l = 0; l < kLanes; ++l) f = fold(f, h[l]);
  return f;
}

}  // namespace hash

/// 64-bit content hash of `bytes` bytes. From 1 MiB on, the bytes are cut into 16 runs (a fixed
/// cut, so the hash does not depend on the thread count) hashed on the pool and folded in order
/// by the same bijective step: a change inside one run changes that run's hash, and so the
/// result, and large inputs do not leave the other threads idle.
inline std::uint64_t content_hash(const void* data, std::size_t bytes) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  constexpr std::size_t kParallelFrom = std::size_t{1} << 20;
  constexpr int kRuns = 16;
  if (bytes < kParallelFrom) return hash::lane_hash(p, bytes);
  const std::size_t run = bytes / kRuns / 256 * 256;  // whole lane blocks
  std::uint64_t h[kRuns];
  parallel_for(kRuns, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
    for (std::ptrdiff_t r = first; r < last; ++r)
      h[r] = hash::lane_hash(p + r * run, r + 1 < kRuns ? run : bytes - (kRuns - 1) * run);
  });
  std::uint64_t f = 0x9e3779b97f4a7c15ull ^ bytes;
  for (int r = 0; r < kRuns; ++r) f = hash::fold(f, h[r]);
  return f;
}
