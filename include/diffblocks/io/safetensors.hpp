#pragma once
// safetensors reading and writing with full validation.
//
// Layout: u64 little-endian header length N, N bytes of JSON, then the data buffer. Every check
// the format allows is made before any tensor is used, and before anything is allocated whose
// size the file claims: header length within the file and at most 100 MiB, JSON that parses to
// an object (at most 64 levels deep, no key twice), known dtypes, integer shapes and offsets,
// offsets inside the buffer, no overlaps, no holes, and shape x dtype size = byte length.
// Floats (F32/F16/BF16/F64) are converted to float32 on read; integer tensors (I64/I32/...)
// are read as int64 for ids.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "diffblocks/core/half.hpp"
#include "diffblocks/core/error.hpp"
#include "diffblocks/core/json.hpp"
#include "diffblocks/core/shape.hpp"
#include "diffblocks/io/atomic_file.hpp"
#include "diffblocks/io/file.hpp"

namespace diffblocks {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::F64: return "F64";
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::I16: return "I16";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::BOOL: return "BOOL";
  }
  return "?";
}

inline std::size_t dtype_size(DType d) {
  switch (d) {
    case DType::F64: case DType::I64: return 8;
    case DType::F32: case DType::I32: return 4;
    case DType::F16: case DType::BF16: case DType::I16: return 2;
    default: return 1;
  }
}

inline bool dtype_from_name(const std::string& s, DType& out) {
  static const std::pair<const char*, DType> table[] = {
      {"F64", DType::F64}, {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16},
      {"I64", DType::I64}, {"I32", DType::I32}, {"I16", DType::I16}, {"I8", DType::I8},
      {"U8", DType::U8},   {"BOOL", DType::BOOL}};
  for (const auto& e : table)
    if (s == e.first) {
      out = e.second;
      return true;
    }
  return false;
}

namespace detail {

template <class T>
T load_le(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // the formats are little-endian, like every supported host
  return v;
}

}  // namespace detail

/// One tensor's entry in a safetensors header.
struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  std::uint64_t begin = 0, end = 0;  // offsets into the data buffer
  std::uint64_t numel() const { return checked_numel(shape, name); }
};

/// A validated safetensors file. Only the header is held in memory: tensor data is read on
/// demand by offset from the open file (load) or from the caller's bytes (from_bytes), so
/// loading a model needs its parameters' memory and not a second copy of the file.
class SafeTensors {
 public:
  /// Largest header accepted (the format's reference implementation uses the same bound).
  static constexpr std::uint64_t kMaxHeaderBytes = std::uint64_t{100} << 20;

  SafeTensors() = default;

  /// Opens and validates `path` (a regular file; see io/file.hpp): the 8-byte header length is
  /// checked against the file size and kMaxHeaderBytes before the header is read, then every
  /// entry against the data buffer. Throws IoError naming the file and the fault.
  static SafeTensors load(const std::string& path) {
    const auto file = RegularFile::open(path, "safetensors file");
    const std::uint64_t size = file->size();
    check_size(size, path);
    unsigned char len[8];
    file->read_at(0, len, 8);
    const std::uint64_t n = check_header_length(detail::load_le<std::uint64_t>(len), size, path);
    std::string header(static_cast<std::size_t>(n), '\0');
    file->read_at(8, header.data(), n);
    SafeTensors st = parse(header, size, path);
    st.file_ = file;
    return st;
  }

  /// Parses an in-memory file; `origin` names it in error messages.
  static SafeTensors from_bytes(std::vector<unsigned char> bytes, const std::string& origin) {
    const std::uint64_t size = bytes.size();
    check_size(size, origin);
    const std::uint64_t n = check_header_length(detail::load_le<std::uint64_t>(bytes.data()), size, origin);
    SafeTensors st = parse(std::string(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n)), size, origin);
    st.bytes_ = std::make_shared<const std::vector<unsigned char>>(std::move(bytes));
    return st;
  }

  const std::string& origin() const { return origin_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  /// Bytes of all tensor data (the file size less the header).
  std::uint64_t data_bytes() const { return data_bytes_; }

  const TensorInfo& info(const std::string& name) const {
    auto it = index_.find(name);
    if (it == index_.end()) throw IoError(origin_ + ": no tensor named '" + name + "'");
    return tensors_[it->second];
  }

  /// Copies a tensor's raw little-endian bytes (t.end - t.begin of them) to `dst`.
  void read_raw(const TensorInfo& t, void* dst) const { read_bytes(t.begin, dst, t.end - t.begin); }

  /// Converts a floating tensor (F32/F16/BF16/F64) to float32 into `out` (numel entries).
  void read_float(const TensorInfo& t, float* out) const {
    switch (t.dtype) {
      case DType::F32:
        if (t.end > t.begin) read_raw(t, out);  // out may be null for an empty tensor
        return;
      case DType::F64: case DType::F16: case DType::BF16:
        for_chunks(t, [&](const unsigned char* p, std::uint64_t first, std::uint64_t count) {
          float* o = out + first;
          if (t.dtype == DType::F64)
            for (std::uint64_t i = 0; i < count; ++i) o[i] = static_cast<float>(detail::load_le<double>(p + 8 * i));
          else if (t.dtype == DType::F16)
            for (std::uint64_t i = 0; i < count; ++i) o[i] = f16_bits_to_float(detail::load_le<std::uint16_t>(p + 2 * i));
          else
            for (std::uint64_t i = 0; i < count; ++i) o[i] = bf16_bits_to_float(detail::load_le<std::uint16_t>(p + 2 * i));
        });
        return;
      default:
        throw IoError(origin_ + ": tensor '" + t.name + "' has dtype " + dtype_name(t.dtype) +
                      ", expected a floating type (F32, F16, BF16 or F64)");
    }
  }

  /// A floating tensor stored in half type H's own dtype (BF16 for db::bf16, F16 for db::f16):
  /// its bits straight into `out` (numel entries), no float32 copy. Other dtypes: read_float
  /// and round (the caller's job: it knows what overflow means for the tensor).
  template <class H>
  void read_same_half(const TensorInfo& t, H* out) const {
    static_assert(is_half_v<H>, "read_same_half reads BF16 / F16");
    if (t.dtype != half_dtype<H>())
      throw IoError(origin_ + ": tensor '" + t.name + "' has dtype " + dtype_name(t.dtype) + ", expected " +
                    dtype_name(half_dtype<H>()));
    for_chunks(t, [&](const unsigned char* p, std::uint64_t first, std::uint64_t count) {
      for (std::uint64_t i = 0; i < count; ++i) out[first + i] = H::from_bits(detail::load_le<std::uint16_t>(p + 2 * i));
    });
  }

  /// The safetensors dtype of half type H.
  template <class H>
  static constexpr DType half_dtype() {
    return std::is_same<H, bf16>::value ? DType::BF16 : DType::F16;
  }

  std::vector<float> read_float(const std::string& name) const {
    const auto& t = info(name);
    auto v = naming_allocation("tensor '" + name + "' of " + origin_, t.numel() * 4,
                               [&] { return std::vector<float>(t.numel()); });
    read_float(t, v.data());
    return v;
  }

  /// Any numeric tensor as float32 (integer inputs such as timesteps may be stored as I64/I32).
  void read_numeric(const TensorInfo& t, float* out) const {
    if (is_float(t.dtype)) return read_float(t, out);
    for_chunks(t, [&](const unsigned char* p, std::uint64_t first, std::uint64_t count) {
      for (std::uint64_t i = 0; i < count; ++i) out[first + i] = static_cast<float>(int_at(t.dtype, p, i));
    });
  }

  /// Integer ids: any integer dtype, or a float tensor whose values are all integral.
  std::vector<std::int64_t> read_int(const std::string& name) const {
    const auto& t = info(name);
    const std::uint64_t n = t.numel();
    auto v = naming_allocation("tensor '" + name + "' of " + origin_, n * 8,
                               [&] { return std::vector<std::int64_t>(n); });
    if (!is_float(t.dtype)) {
      for_chunks(t, [&](const unsigned char* p, std::uint64_t first, std::uint64_t count) {
        for (std::uint64_t i = 0; i < count; ++i) v[first + i] = int_at(t.dtype, p, i);
      });
      return v;
    }
    std::vector<float> f(n);
    read_float(t, f.data());
    for (std::uint64_t i = 0; i < n; ++i) {
      if (!std::isfinite(f[i]) || std::floor(f[i]) != f[i] || std::fabs(f[i]) > 9.0e15f)
        throw IoError(origin_ + ": tensor '" + name + "' must hold integer ids, but element " + std::to_string(i) +
                      " is " + std::to_string(f[i]));
      v[i] = static_cast<std::int64_t>(f[i]);
    }
    return v;
  }

 private:
  static bool is_float(DType d) { return d == DType::F32 || d == DType::F64 || d == DType::F16 || d == DType::BF16; }

  static std::int64_t int_at(DType d, const unsigned char* p, std::uint64_t i) {
    switch (d) {
      case DType::I64: return detail::load_le<std::int64_t>(p + 8 * i);
      case DType::I32: return detail::load_le<std::int32_t>(p + 4 * i);
      case DType::I16: return detail::load_le<std::int16_t>(p + 2 * i);
      case DType::I8: return static_cast<std::int8_t>(p[i]);
      default: return p[i];  // U8, BOOL
    }
  }

  static void check_size(std::uint64_t size, const std::string& origin) {
    if (size < 8)
      throw IoError(origin + ": truncated safetensors file (" + std::to_string(size) +
                    " bytes, the 8-byte header length is missing)");
  }

  static std::uint64_t check_header_length(std::uint64_t n, std::uint64_t size, const std::string& origin) {
    if (n > size - 8)
      throw IoError(origin + ": header length " + std::to_string(n) + " is beyond the file size " +
                    std::to_string(size) + " (truncated or not a safetensors file)");
    if (n > kMaxHeaderBytes) throw IoError(origin + ": header length " + std::to_string(n) + " exceeds 100 MiB");
    return n;
  }

  /// Validates the header of a file of `size` bytes.
  static SafeTensors parse(const std::string& text, std::uint64_t size, const std::string& origin) {
    SafeTensors st;
    st.origin_ = origin;
    const nlohmann::json header = parse_json_checked<IoError>(text, origin, "header");
    if (!header.is_object()) throw IoError(origin + ": header is not a JSON object");
    const std::uint64_t buffer_size = size - 8 - text.size();
    st.data_offset_ = 8 + text.size();
    st.data_bytes_ = buffer_size;

    for (auto it = header.begin(); it != header.end(); ++it) {
      const std::string& key = it.key();
      if (key == "__metadata__") {
        if (!it->is_object()) throw IoError(origin + ": __metadata__ is not an object");
        for (auto m = it->begin(); m != it->end(); ++m) {
          if (!m->is_string())
            throw IoError(origin + ": __metadata__ value '" + m.key() + "' is not a string");
          st.metadata_[m.key()] = m->get<std::string>();
        }
        continue;
      }
      st.tensors_.push_back(parse_entry(key, *it, origin, buffer_size));
    }

    // Offsets must tile the buffer exactly: sorted, no overlap, no hole, nothing left over.
    std::vector<const TensorInfo*> order;
    for (const auto& t : st.tensors_) order.push_back(&t);
    std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
      return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
    });
    std::uint64_t pos = 0;
    const TensorInfo* prev = nullptr;
    for (const auto* t : order) {
      if (t->begin < pos)
        throw IoError(origin + ": tensor '" + t->name + "' overlaps tensor '" + (prev ? prev->name : "") + "'");
      if (t->begin > pos)
        throw IoError(origin + ": hole in the data buffer before tensor '" + t->name + "' (bytes " +
                      std::to_string(pos) + ".." + std::to_string(t->begin) + " unused)");
      pos = t->end;
      prev = t;
    }
    if (pos != buffer_size)
      throw IoError(origin + ": data buffer has " + std::to_string(buffer_size - pos) +
                    " trailing bytes not covered by any tensor");
    for (std::size_t i = 0; i < st.tensors_.size(); ++i) st.index_[st.tensors_[i].name] = i;
    return st;
  }

  /// `n` bytes at `offset` into the data buffer (validated against the buffer by parse()).
  void read_bytes(std::uint64_t offset, void* dst, std::uint64_t n) const {
    if (n == 0) return;
    if (bytes_) std::memcpy(dst, bytes_->data() + data_offset_ + offset, static_cast<std::size_t>(n));
    else if (file_) file_->read_at(data_offset_ + offset, dst, n);
    else throw IoError("read from an empty SafeTensors");
  }

  /// Calls f(bytes, first element, count) over a tensor's data in pieces of at most 1 MiB (the
  /// whole tensor at once from memory), so converting a tensor never holds a second copy of it.
  template <class F>
  void for_chunks(const TensorInfo& t, F&& f) const {
    const std::uint64_t esz = dtype_size(t.dtype), n = t.numel();
    if (n == 0) return;
    if (bytes_) return f(bytes_->data() + data_offset_ + t.begin, 0, n);
    const std::uint64_t per = std::max<std::uint64_t>(1, (std::uint64_t{1} << 20) / esz);
    std::vector<unsigned char> buf(static_cast<std::size_t>(std::min(n, per) * esz));
    for (std::uint64_t first = 0; first < n; first += per) {
      const std::uint64_t count = std::min(per, n - first);
      read_bytes(t.begin + first * esz, buf.data(), count * esz);
      f(buf.data(), first, count);
    }
  }

  static TensorInfo parse_entry(const std::string& key, const nlohmann::json& e, const std::string& origin,
                                std::uint64_t buffer_size) {
    const std::string where = origin + ": tensor '" + key + "'";
    if (!e.is_object()) throw IoError(where + ": header entry is not an object");
    TensorInfo t;
    t.name = key;
    if (!e.contains("dtype") || !e["dtype"].is_string()) throw IoError(where + ": missing or non-string 'dtype'");
    const std::string dt = e["dtype"].get<std::string>();
    if (!dtype_from_name(dt, t.dtype)) throw IoError(where + ": unsupported dtype '" + dt + "'");
    if (!e.contains("shape") || !e["shape"].is_array()) throw IoError(where + ": missing or non-array 'shape'");
    for (const auto& d : e["shape"]) {
      if (!d.is_number_integer() || d.get<std::int64_t>() < 0)
        throw IoError(where + ": shape entries must be non-negative integers");
      t.shape.push_back(d.get<std::int64_t>());
    }
    if (!e.contains("data_offsets") || !e["data_offsets"].is_array() || e["data_offsets"].size() != 2 ||
        !e["data_offsets"][0].is_number_unsigned() || !e["data_offsets"][1].is_number_unsigned())
      throw IoError(where + ": 'data_offsets' must be two non-negative integers");
    t.begin = e["data_offsets"][0].get<std::uint64_t>();
    t.end = e["data_offsets"][1].get<std::uint64_t>();
    if (t.begin > t.end) throw IoError(where + ": data_offsets begin > end");
    if (t.end > buffer_size)
      throw IoError(where + ": data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                    "] out of range (data buffer is " + std::to_string(buffer_size) + " bytes)");
    const std::uint64_t n = checked_numel(t.shape, where);
    const std::uint64_t sz = dtype_size(t.dtype);
    if (n > std::numeric_limits<std::uint64_t>::max() / sz)
      throw IoError(where + ": shape " + shape_str(t.shape) + " x " + dt + " overflows: it would need more than " +
                    std::to_string(std::numeric_limits<std::uint64_t>::max()) + " bytes but data_offsets span " +
                    std::to_string(t.end - t.begin));
    if (n * sz != t.end - t.begin)
      throw IoError(where + ": shape " + shape_str(t.shape) + " x " + dt + " needs " + std::to_string(n * sz) +
                    " bytes but data_offsets span " + std::to_string(t.end - t.begin));
    return t;
  }

  std::string origin_;
  std::shared_ptr<const RegularFile> file_;                   // load(): data read by offset
  std::shared_ptr<const std::vector<unsigned char>> bytes_;   // from_bytes(): the whole file
  std::uint64_t data_offset_ = 0, data_bytes_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

/// A tensor to write: float32 or int64 data with a shape.
struct TensorToWrite {
  std::string name;
  Shape shape;
  std::vector<float> f32;
  std::vector<std::int64_t> i64;
  bool is_int = false;
};

/// Writes a safetensors file atomically (io/atomic_file.hpp): a failure never leaves a half
/// file, and never replaces what was at `path`.
inline void save_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                             const std::map<std::string, std::string>& metadata = {}) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const auto& t : tensors) {
    const std::uint64_t n = checked_numel(t.shape, t.name);
    const std::uint64_t have = t.is_int ? t.i64.size() : t.f32.size();
    if (n != have)
      throw IoError(path + ": tensor '" + t.name + "' has " + std::to_string(have) + " values but shape " +
                    shape_str(t.shape));
    if (header.contains(t.name)) throw IoError(path + ": tensor '" + t.name + "' given twice");
    const std::uint64_t bytes = n * (t.is_int ? 8 : 4);
    header[t.name] = {{"dtype", t.is_int ? "I64" : "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string h;
  try {
    h = header.dump();
  } catch (const nlohmann::json::exception& e) {  // a name or metadata value that is not UTF-8
    throw IoError(path + ": cannot write the header (" + e.what() + ")");
  }
  while ((h.size() + 8) % 8 != 0) h.push_back(' ');  // keep the data buffer 8-byte aligned
  write_file_atomically(path, [&](FileSink& out) {
    const std::uint64_t hn = h.size();
    out.write(&hn, 8);
    out.write(h.data(), h.size());
    for (const auto& t : tensors) {
      if (t.is_int) out.write(t.i64.data(), t.i64.size() * 8);
      else out.write(t.f32.data(), t.f32.size() * 4);
    }
  });
}

}  // namespace diffblocks
