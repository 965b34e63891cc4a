// libFuzzer target: the safetensors reader, every way of reading a tensor out of it, and, when
// the file embeds a model config (single-file models), the config parser and strict loading.
#include <vector>

#include "fuzz_common.hpp"

// DBFUZZ_ENTRY renames the entry point so that the tests can include several targets.
#ifndef DBFUZZ_ENTRY
#define DBFUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

extern "C" int DBFUZZ_ENTRY(const std::uint8_t* data, std::size_t size) {
  namespace db = diffblocks;
  try {
    db::ModelFile file;
    file.path = "fuzz.safetensors";
    file.weights = db::SafeTensors::from_bytes(std::vector<unsigned char>(data, data + size), file.path);
    for (const auto& t : file.weights.tensors()) {
      // numel * dtype size == the tensor's byte span was validated, so this is bounded by size.
      std::vector<float> values(t.numel());
      try {
        file.weights.read_numeric(t, values.data());
      } catch (const db::Error& e) {
        dbfuzz::format_error(e);
      }
      try {
        (void)file.weights.read_int(t.name);
      } catch (const db::Error& e) {
        dbfuzz::format_error(e);
      }
    }
    const auto& meta = file.weights.metadata();
    const auto it = meta.find("config");
    if (it == meta.end()) return 0;
    file.config_origin = "fuzz.safetensors (__metadata__ config)";
    file.config = db::parse_config_text(it->second, file.config_origin);
    dbfuzz::build_model(file, /*load=*/true);
  } catch (const db::Error& e) {
    dbfuzz::format_error(e);  // tensor names and keys from the file: the message must be escaped
  }
  return 0;
}
